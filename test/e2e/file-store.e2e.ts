/**
 * The browser's file store in real Chromium (web/src/engine/files/opfs-store.ts, opfs-worker.ts;
 * docs/protocol/files.md §6): a page bundled from the real modules (bench/page-bundle.ts; nothing
 * mocked) stores sealed chunks through `OpfsFileStore` — one origin-private file per transfer,
 * written by its worker through a sync access handle — and reads them back: in order, holes
 * skipped, across a reload, a transfer in 255 KiB chunks in slots of its size (files.md §2, §6),
 * chunks an earlier version left in IndexedDB still readable, deleting a
 * transfer deleting its file, a chunk larger than a slot refused, a file of garbage read as
 * nothing stored, IndexedDB used when the worker cannot start (what an earlier page stored in the
 * transfer's file still read and deleted, through the asynchronous API) or files have no sync
 * access handles (no folder made), a batch opened and digested in the worker before it is written
 * (`putOpened`: the plaintexts' SHA-256; a batch with a chunk that does not open not written), a
 * sender's sealed copy read and opened in the worker (`getOpened`: whether each chunk opened, a
 * changed slot not, a hole left to the caller; its worker dying under it replaced, the read asked
 * again), the worker's own checks of a get or a put asked of it directly (each slot opened with
 * its own nonce past a hole; a read larger than the store's, or an `open` not one nonce and AAD
 * per slot, refused with what is wrong) and
 * claimed (`opensChunks`) only where the worker started and has WebCrypto, its keys forgotten on
 * release, each put's buffer given back by the worker and the next batch laid out in it, a
 * read's buffer the caller gave back read into next, and
 * the worker as the first
 * browsers with sync access handles run it (promises from getSize, flush and close), a worker
 * that dies (before or after writing a put), or sends a reply that cannot be read, started again
 * and the request asked again of the new one (at most three tries; never once the store was
 * released after it was asked), and a request that cannot be
 * sent (postMessage throws) asked again, nothing left waiting; a file another handle still holds
 * waited for when the worker opens it (bounded). The engine over this store (transfers, resume after
 * a reload) is test/e2e/files.e2e.ts.
 */
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPage, callPage, repoModule, servePage } from "../../bench/page-bundle.ts";
import { launchChromium } from "../support/browser.ts";

const PAGE_SOURCE = `
import { OpfsFileStore, startOpfsWorker } from ${repoModule("web/src/engine/files/opfs-store.ts")};
import { IdbFileStore } from ${repoModule("web/src/engine/files/idb-store.ts")};
import { chunkFileName, packSlots, SLOT_BYTES, SLOT_HEADER_BYTES } from ${repoModule("web/src/engine/files/opfs-protocol.ts")};
import { SEALED_CHUNK_BYTES, FILE_CHUNK_BYTES, chunkAad, chunkCount, chunkNonce, chunkPlainBytes, sealChunkBytes } from ${repoModule("web/src/engine/files/wire.ts")};
import { createWebCryptoProvider } from ${repoModule("core/crypto/webcrypto.ts")};
import { forgetDeviceFiles } from ${repoModule("web/src/app/device-files.ts")};
import workerUrl from ${JSON.stringify(`${JSON.parse(repoModule("web/src/engine/files/opfs-worker.ts"))}?worker&url`)};

/** A chunk whose bytes say which it is: \`n\` bytes of \`index + 1\`. */
const chunk = (index, n = SEALED_CHUNK_BYTES) => new Uint8Array(n).fill(index + 1);
const summary = (cs) => cs.map((c) => [c.length, c[0], c[c.length - 1]]);
const files = async (dir) => {
  const d = await (await navigator.storage.getDirectory()).getDirectoryHandle(dir, { create: true });
  const names = [];
  for await (const name of d.keys()) names.push(name);
  return names.sort();
};
/** The store's real worker (the bundle's), with \`before\` run ahead of it and \`after\` behind it. */
const wrappedWorker = (before, after = "") => {
  const source = before + "importScripts(" + JSON.stringify(new URL(workerUrl, location.href).href) + ");" + after;
  return new Worker(URL.createObjectURL(new Blob([source], { type: "text/javascript" })));
};
/**
 * The store's worker as the first browsers with sync access handles run it (Chromium 102–107,
 * Safari 15.2–16.3): there getSize, flush and close answer with a promise (an earlier draft of
 * the spec), settled a turn later.
 */
const earlyApiWorker = () =>
  wrappedWorker(
    "const P = FileSystemSyncAccessHandle.prototype;" +
      "for (const name of ['getSize', 'flush', 'close']) {" +
      "  const f = P[name];" +
      "  P[name] = function () { const h = this; return new Promise((r) => setTimeout(r)).then(() => f.call(h)); };" +
      "}",
  );
/** The store's worker, ended by an uncaught error at its first put (a worker that dies mid-transfer). */
const dyingWorker = () =>
  wrappedWorker(
    "",
    "const real = self.onmessage;" +
      "self.onmessage = (e) => {" +
      "  if (e.data.op !== 'put') return real(e);" +
      "  setTimeout(() => { throw new Error('the worker died'); });" +
      "};",
  );
/**
 * The store's real worker that dies at its \`at\`-th put after writing it (the handle open, the
 * slots flushed) and before answering: a crash in the middle of a put.
 */
const crashingWorker = (at) =>
  wrappedWorker(
    "",
    "let puts = 0; const dying = new Set(); const post = self.postMessage.bind(self);" +
      "const real = self.onmessage;" +
      "self.onmessage = (e) => { if (e.data.op === 'put' && ++puts === " + at + ") dying.add(e.data.id); return real(e); };" +
      "self.postMessage = (m, t) => {" +
      "  if (!dying.has(m.id)) return post(m, t);" +
      "  setTimeout(() => { throw new Error('the worker died after writing'); });" +
      "};",
  );
/** The store's real worker, ended by an uncaught error at every get that asks it to open what it reads (getOpened). */
const getDyingWorker = () =>
  wrappedWorker(
    "",
    "const real = self.onmessage;" +
      "self.onmessage = (e) => {" +
      "  if (e.data.op !== 'get' || !e.data.open) return real(e);" +
      "  setTimeout(() => { throw new Error('the worker died reading'); });" +
      "};",
  );
/**
 * The store's worker whose reply to a put cannot be read: it answers with a marker, and the page
 * fires \`messageerror\` on the Worker for it, as the browser does for a reply it cannot deserialize.
 */
const unreadableReplyWorker = () => {
  const w = wrappedWorker(
    "",
    "const real = self.onmessage;" +
      "self.onmessage = (e) => { if (e.data.op !== 'put') return real(e); postMessage({ unreadable: true }); };",
  );
  w.addEventListener("message", (e) => {
    if (e.data?.unreadable) w.dispatchEvent(new MessageEvent("messageerror"));
  });
  return w;
};
/** A bound on a request that may never be answered: "still waiting" after 5 s. */
const settled = (p) =>
  Promise.race([
    p.then(() => "stored", (e) => e.name + ": " + e.message),
    new Promise((r) => setTimeout(() => r("still waiting"), 5000)),
  ]);
/**
 * A put that fails (the store's worker is made to), then the same put again with one more chunk:
 * what each answered, how many requests were left waiting, what was stored, what is left behind.
 */
const failsThenWorks = async (s, transfer, folder) => {
  const opfs = await s.usesOpfs();
  const first = await settled(s.putChunks(transfer, 0, [chunk(0)]));
  const waiting = s.waitingRequests;
  const again = await settled(s.putChunks(transfer, 0, [chunk(0), chunk(1, 20)]));
  const got = summary(await s.getChunks(transfer, 0, 3));
  await s.deleteTransfer(transfer);
  await s.release();
  return { opfs, first, waiting, again, got, files: await files(folder) };
};
/** The store's real worker, asked directly: ids, replies by id, as opfs-store.ts asks it. */
const rawWorker = () => {
  const w = startOpfsWorker();
  let next = 0;
  const ask = (m, transfer = []) =>
    new Promise((resolve) => {
      const id = ++next;
      const got = (e) => {
        if (e.data?.id !== id) return;
        w.removeEventListener("message", got);
        resolve(e.data);
      };
      w.addEventListener("message", got);
      w.postMessage({ ...m, id }, transfer);
    });
  return { w, ask };
};
/** One store per page, as the app has (chat-engine.ts): a file's sync handle is its worker's alone. */
let one;
const store = () => (one ??= new OpfsFileStore("t-files", "t-chunks"));
/**
 * A worker's idle close (the app's: 2 s) far out of a test's reach, for a check that a file is
 * still held: on a loaded machine 2 s can pass between a put and the check.
 */
const HOLD = { idleCloseMs: 600_000 };
/** The store of the idle-close test, across its calls. */
let idler;
/** The store of the kept-buffers-go-when-idle test, across its calls. */
let spender;
/** Whether the page can write the file (a sync access handle, the worker's, locks it): "free" or the error's name. */
const writable = async (dir, file) => {
  const d = await (await navigator.storage.getDirectory()).getDirectoryHandle(dir);
  const w = await (await d.getFileHandle(file)).createWritable({ keepExistingData: true }).catch((e) => e.name);
  if (typeof w === "string") return w;
  await w.abort();
  return "free";
};

const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

window.loftBench = {
  slots: () => ({ slot: SLOT_BYTES, header: SLOT_HEADER_BYTES, sealed: SEALED_CHUNK_BYTES }),
  async opened() {
    // A transfer of 5 chunks (the last short), sealed as a sender seals them (wire.ts), checked
    // and stored by the worker (putOpened): its digests are the plaintexts' SHA-256 (files.md §1).
    const crypto = await createWebCryptoProvider();
    const key = crypto.randomBytes(32);
    const size = 4 * FILE_CHUNK_BYTES + 1000;
    const total = chunkCount(size);
    const plains = Array.from({ length: total }, (_, i) =>
      new Uint8Array(chunkPlainBytes(size, i)).map((_, k) => (k * 7 + i) & 0xff),
    );
    const frames = await Promise.all(
      plains.map(async (p, index) => {
        const header = { id: 9, index, total, chunkSize: SEALED_CHUNK_BYTES };
        return { header, sealed: await sealChunkBytes(crypto, key, header, p) };
      }),
    );
    const s = store();
    const digests = await s.putOpened("c/in/20", 0, frames.slice(0, 3), key, SEALED_CHUNK_BYTES);
    const expected = await Promise.all(
      plains.map(async (p) => hex(new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", p)))),
    );
    const stored = await s.getChunks("c/in/20", 0, 5);
    // A batch with a chunk changed on the way (its second): nothing of it written, its position said.
    const changed = frames.slice(3).map((f) => ({ header: f.header, sealed: f.sealed.slice() }));
    changed[1].sealed[10] ^= 1;
    const damaged = await s.putOpened("c/in/20", 3, changed, key, SEALED_CHUNK_BYTES);
    const afterDamaged = (await s.getChunks("c/in/20", 0, 5)).length;
    // Under another key (a chunk moved from another transfer): the first does not open.
    const otherKey = await s.putOpened("c/in/20", 3, frames.slice(3), crypto.randomBytes(32), SEALED_CHUNK_BYTES);
    // The right batch after those: stored, digests right (the worker's key for the file is this one again).
    const rest = await s.putOpened("c/in/20", 3, frames.slice(3), key, SEALED_CHUNK_BYTES);
    const all = await s.getChunks("c/in/20", 0, 5);
    const same = all.length === 5 && all.every((c, i) => hex(c) === hex(frames[i].sealed));
    await s.deleteTransfer("c/in/20");
    return {
      digests: digests.map(hex),
      expected: expected.slice(0, 3),
      stored: summary(stored).map((c) => c[0]),
      damaged,
      afterDamaged,
      otherKey,
      rest: rest.map(hex),
      expectedRest: expected.slice(3),
      same,
    };
  },
  async readOpened() {
    // The sender's sealed copy read back and checked in the worker (getOpened, files.md §5): five
    // chunks sealed as a sender seals them and stored; read with their headers, each said opened.
    const crypto = await createWebCryptoProvider();
    const key = crypto.randomBytes(32);
    const size = 4 * FILE_CHUNK_BYTES + 1000;
    const total = chunkCount(size);
    const headers = Array.from({ length: total }, (_, index) => ({ id: 11, index, total, chunkSize: SEALED_CHUNK_BYTES }));
    const sealed = await Promise.all(
      headers.map((header, i) =>
        sealChunkBytes(crypto, key, header, new Uint8Array(chunkPlainBytes(size, i)).map((_, k) => (k * 5 + i) & 0xff)),
      ),
    );
    const s = store();
    // Deleted whatever happens: the tests after this one count the files in the same folder.
    try {
      await s.putChunks("c/out/21", 0, sealed, SEALED_CHUNK_BYTES);
      const whole = await s.getOpened("c/out/21", headers, key, SEALED_CHUNK_BYTES);
      const same = whole.chunks.length === total && whole.chunks.every((c, i) => hex(c) === hex(sealed[i]));
      // A slot changed on this device's disk (one bit of chunk 2): that one said not opened, the rest opened.
      const changed = sealed[2].slice();
      changed[100] ^= 1;
      await s.putChunks("c/out/21", 2, [changed], SEALED_CHUNK_BYTES);
      const damaged = await s.getOpened("c/out/21", headers, key, SEALED_CHUNK_BYTES);
      // From chunk 3 on only (a block further in): their own nonces and AADs, opened.
      const later = await s.getOpened("c/out/21", headers.slice(3), key, SEALED_CHUNK_BYTES);
      // Under another key (the worker's key for the file replaced): none opens.
      const otherKey = await s.getOpened("c/out/21", headers, crypto.randomBytes(32), SEALED_CHUNK_BYTES);
      // A slot never written (a hole): not answered here — the caller reads and opens as before.
      await s.putChunks("c/out/22", 0, [sealed[0], sealed[1]], SEALED_CHUNK_BYTES);
      await s.putChunks("c/out/22", 3, [sealed[3]], SEALED_CHUNK_BYTES);
      const hole = await s.getOpened("c/out/22", headers.slice(0, 4), key, SEALED_CHUNK_BYTES);
      return {
        opened: whole.opened,
        same,
        damaged: damaged.opened,
        later: later.opened,
        otherKey: otherKey.opened,
        hole: hole === undefined ? "undefined" : "answered",
      };
    } finally {
      await s.deleteTransfer("c/out/21");
      await s.deleteTransfer("c/out/22");
    }
  },
  async reusedReads() {
    // A read's buffer the caller gave back (\`reuse\`: the sender's pump, once a block went out)
    // is read into next: the chunks answered are the slots read, whatever the buffer held before.
    const crypto = await createWebCryptoProvider();
    const key = crypto.randomBytes(32);
    const size = 5 * FILE_CHUNK_BYTES;
    const total = chunkCount(size);
    const headers = Array.from({ length: total }, (_, index) => ({ id: 12, index, total, chunkSize: SEALED_CHUNK_BYTES }));
    const sealed = await Promise.all(
      headers.map((header, i) =>
        sealChunkBytes(crypto, key, header, new Uint8Array(FILE_CHUNK_BYTES).map((_, k) => (k * 3 + i) & 0xff)),
      ),
    );
    // Its own: no buffer another test gave back; nor dropped as idle between two steps (HOLD).
    const s = new OpfsFileStore("t-files-reads", "t-chunks-reads", startOpfsWorker, HOLD);
    try {
      await s.putChunks("c/out/41", 0, sealed, SEALED_CHUNK_BYTES);
      const first = await s.getOpened("c/out/41", headers.slice(0, 3), key, SEALED_CHUNK_BYTES);
      const buffer = first.chunks[0].buffer;
      const size0 = buffer.byteLength;
      s.reuse(buffer);
      const kept = s.readSpares;
      // Two slots fit in it: read into it (taken), and they are the slots read, not what it held.
      const second = await s.getOpened("c/out/41", headers.slice(3), key, SEALED_CHUNK_BYTES);
      const taken = s.readSpares;
      const same = second.chunks.length === 2 && second.chunks.every((c, i) => hex(c) === hex(sealed[3 + i]));
      // A buffer too small for the read is not used (a new one is), and stays kept.
      s.reuse(new ArrayBuffer(100));
      const third = await s.getOpened("c/out/41", headers, key, SEALED_CHUNK_BYTES);
      const sameAll = third.chunks.length === total && third.chunks.every((c, i) => hex(c) === hex(sealed[i]));
      // The worker read into it: the chunks are views into that buffer, three slots long (a new
      // one holds what was read, two).
      const readInto = second.chunks[0].buffer.byteLength;
      return { size0, kept, taken, same, readInto, opened: second.opened, sameAll, small: s.readSpares };
    } finally {
      await s.deleteTransfer("c/out/41");
      await s.release();
    }
  },
  async rawGets() {
    // The store's real worker asked directly (ids, replies by id, as opfs-store.ts asks it): a get
    // that opens what it reads over a file with a hole (slots 0, 1 and 3 written), then requests
    // the store never makes — each refused with what is wrong, nothing read, opened or written,
    // and the worker still answering after them.
    const crypto = await createWebCryptoProvider();
    const key = crypto.randomBytes(32);
    const size = 4 * FILE_CHUNK_BYTES + 1000;
    const total = chunkCount(size);
    const headers = Array.from({ length: total }, (_, index) => ({ id: 12, index, total, chunkSize: SEALED_CHUNK_BYTES }));
    const sealed = await Promise.all(
      headers.map((h, i) => sealChunkBytes(crypto, key, h, new Uint8Array(chunkPlainBytes(size, i)).fill(i + 1))),
    );
    const { w, ask } = rawWorker();
    const file = chunkFileName("c/out/23");
    const open = (hs) => ({ key: key.slice(), ivs: hs.map((h) => chunkNonce(h.index)), aads: hs.map((h) => chunkAad(h)) });
    const said = (r) => (r.error ? r.error.name + ": " + r.error.message : { indexes: r.indexes, opened: r.opened });
    const put = (first, cs, extra = {}) => {
      const slots = packSlots(cs);
      return ask({ op: "put", file, first, slots, ...extra }, [slots.buffer]).then(said);
    };
    const get = (extra) => ask({ op: "get", file, first: 0, count: 4, ...extra }).then(said);
    const four = headers.slice(0, 4);
    try {
      const started = await ask({ op: "open", dir: "t-chunks-20" });
      await put(0, [sealed[0], sealed[1]]);
      await put(3, [sealed[3]]);
      const shortNonce = open(four);
      shortNonce.ivs[2] = shortNonce.ivs[2].subarray(0, 11);
      const textAad = open(four);
      textAad.aads[1] = "loft/file/v1";
      const badPut = open([headers[4]]);
      badPut.ivs[0] = new Uint8Array(11);
      return {
        opens: started.opens,
        hole: await get({ open: open(four) }),
        fewer: await get({ open: open(headers.slice(0, 3)) }),
        shortNonce: await get({ open: shortNonce }),
        textAad: await get({ open: textAad }),
        shortKey: await get({ open: { ...open(four), key: key.slice(1) } }),
        tooMany: await get({ count: 65 }),
        before: await get({ first: -1 }),
        half: await get({ first: 0.5 }),
        badPut: await put(4, [sealed[4]], { open: badPut }),
        afterPut: await ask({ op: "get", file, first: 4, count: 1 }).then(said),
        after: await get({ open: open(four) }),
      };
    } finally {
      await ask({ op: "delete", file });
      await ask({ op: "release" });
      w.terminate();
    }
  },
  async rawSpareInto() {
    // The worker asked directly with the buffers the store reuses (opfs-protocol.ts \`spare\`,
    // \`into\`), each longer than its slots and dirty past them: a put writes its slots' view
    // only — not the bytes after it, which would put an earlier batch's chunk past the file's
    // end — and gives the whole buffer back; a get reads into the page's buffer when it holds the
    // slots, else (too short, not an ArrayBuffer) into one of its own, and answers what it read.
    const { w, ask } = rawWorker();
    const dirty = (slots) => new Uint8Array(slots * SLOT_BYTES).fill(0xee).buffer;
    const file = chunkFileName("c/in/45");
    const a = chunk(0);
    const b = chunk(1, 7);
    const read = async (into) => {
      const r = await ask({ op: "get", file, first: 0, count: 3, ...(into === undefined ? {} : { into }) }, into instanceof ArrayBuffer ? [into] : []);
      return { indexes: r.indexes, same: hex(r.chunks[0]) === hex(a) && hex(r.chunks[1]) === hex(b), buffer: r.chunks[0].buffer.byteLength };
    };
    try {
      await ask({ op: "open", dir: "t-chunks-22" });
      const slots = packSlots([a, b], SLOT_BYTES, dirty(3));
      const put = await ask({ op: "put", file, first: 0, slots }, [slots.buffer]);
      const r = {
        put: { error: put.error, spare: put.spare?.byteLength },
        small: await read(new ArrayBuffer(100)),
        notBuffer: await read("not a buffer"),
        into: await read(dirty(4)),
      };
      await ask({ op: "release" }); // its handle closed: the file read as the browser has it
      const d = await (await navigator.storage.getDirectory()).getDirectoryHandle("t-chunks-22");
      return { ...r, fileBytes: (await (await d.getFileHandle(file)).getFile()).size };
    } finally {
      await ask({ op: "delete", file });
      await ask({ op: "release" });
      w.terminate();
    }
  },
  async getDies(dying) {
    // The first \`dying\` workers started die at every get that opens what it reads (getOpened).
    const crypto = await createWebCryptoProvider();
    const key = crypto.randomBytes(32);
    const headers = [0, 1, 2].map((index) => ({ id: 13, index, total: 3, chunkSize: SEALED_CHUNK_BYTES }));
    const sealed = await Promise.all(
      headers.map((h) => sealChunkBytes(crypto, key, h, new Uint8Array(100).fill(h.index + 1))),
    );
    let starts = 0;
    // Names of each call's own (getDies(1), getDies(3)): nothing one left can answer the other.
    const s = new OpfsFileStore(\`t-files-21-\${dying}\`, \`t-chunks-21-\${dying}\`, () => (starts++ < dying ? getDyingWorker() : startOpfsWorker()));
    const opfs = await s.usesOpfs();
    const read = () =>
      s.getOpened("c/out/24", headers, key, SEALED_CHUNK_BYTES).then(
        (r) =>
          r === undefined
            ? "undefined"
            : { opened: r.opened, same: r.chunks.length === 3 && r.chunks.every((c, i) => hex(c) === hex(sealed[i])) },
        (e) => e.name + ": " + e.message,
      );
    try {
      await s.putChunks("c/out/24", 0, sealed, SEALED_CHUNK_BYTES);
      const checked = await read();
      const waiting = s.waitingRequests;
      const again = await read();
      return { opfs, checked, waiting, again, starts };
    } finally {
      await s.deleteTransfer("c/out/24");
      await s.release();
    }
  },
  async roundTrip() {
    const s = store();
    const opfs = await s.usesOpfs();
    await s.putChunks("c/in/1", 0, [chunk(0), chunk(1), chunk(2, 100)]);
    await s.putChunks("c/in/1", 5, [chunk(5, 17)]); // chunks 3 and 4 never stored: a hole
    await s.putRecord({ key: "c/in/1", at: 1, sealed: new Uint8Array([1, 2, 3]) });
    return {
      opfs,
      files: await files("t-chunks"),
      all: summary(await s.getChunks("c/in/1", 0, 8)),
      first2: summary(await s.getChunks("c/in/1", 0, 2)),
      one: summary([await s.getChunk("c/in/1", 2)]),
      hole: (await s.getChunk("c/in/1", 3)) === undefined,
      past: (await s.getChunks("c/in/1", 9, 4)).length,
      other: (await s.getChunks("c/in/2", 0, 4)).length,
      records: (await s.listRecords()).map((r) => r.key),
    };
  },
  async reusedBuffers() {
    // Each put's buffer comes back from the worker and carries the next batch (opfs-store.ts
    // \`#slotBuffer\`): a batch laid out over an earlier one's bytes — a short chunk before the
    // last, whose slot's end must be zeros again — is stored and read back as it was put.
    // Its own: no buffer another test gave back; nor dropped as idle between two puts (HOLD).
    const s = new OpfsFileStore("t-files-reuse", "t-chunks-reuse", startOpfsWorker, HOLD);
    const opfs = await s.usesOpfs();
    await s.putChunks("c/in/40", 0, [chunk(0), chunk(1)]);
    const afterFirst = s.spareBuffers;
    await s.putChunks("c/in/40", 2, [chunk(2, 100), chunk(3, 7)]);
    const afterSecond = s.spareBuffers;
    await s.putChunks("c/in/40", 4, [chunk(4), chunk(5), chunk(6, 9)]); // larger: a new buffer
    const afterThird = s.spareBuffers;
    const all = summary(await s.getChunks("c/in/40", 0, 8));
    await s.deleteTransfer("c/in/40");
    await s.release();
    return { opfs, afterFirst, afterSecond, afterThird, all };
  },
  async keptThenIdle() {
    // The buffers kept for the next put and read (a put's, given back by the worker; a read's,
    // given back by the caller) go once unused for the idle delay (short here): a page whose
    // transfers ended holds none.
    spender = new OpfsFileStore("t-files-9", "t-chunks-9", startOpfsWorker, { idleCloseMs: 50 });
    await spender.putChunks("c/in/43", 0, [chunk(0), chunk(1, 10)]);
    spender.reuse(new ArrayBuffer(1000));
    return { puts: spender.spareBuffers, reads: spender.readSpares };
  },
  kept: () => ({ puts: spender.spareBuffers, reads: spender.readSpares }),
  async keptThenReleased() {
    // … and at once when the store is released (the engine stopped), however long the delay.
    await spender.deleteTransfer("c/in/43");
    await spender.release();
    const s = new OpfsFileStore("t-files-9", "t-chunks-9", startOpfsWorker, HOLD);
    await s.putChunks("c/in/44", 0, [chunk(0)]);
    s.reuse(new ArrayBuffer(1000));
    const before = { puts: s.spareBuffers, reads: s.readSpares };
    await s.deleteTransfer("c/in/44");
    const held = { puts: s.spareBuffers, reads: s.readSpares };
    await s.release();
    return { before, held, after: { puts: s.spareBuffers, reads: s.readSpares } };
  },
  async afterReload() {
    const s = store();
    return { all: summary(await s.getChunks("c/in/1", 0, 8)), records: (await s.listRecords()).map((r) => r.key) };
  },
  async overwrite() {
    // The sender's copy is written again when a block is read again (a resume): the same slot.
    const s = store();
    await s.putChunks("c/in/1", 2, [chunk(7, 60)]);
    return summary(await s.getChunks("c/in/1", 0, 8));
  },
  async legacy() {
    // Chunks an earlier version stored in IndexedDB (the same database), then the rest here.
    // Its own database and folder: what it checks is empty holds nothing another test left.
    await new IdbFileStore("t-files-legacy").putChunks("c/in/old", 0, [chunk(0), chunk(1)]);
    const s = new OpfsFileStore("t-files-legacy", "t-chunks-legacy");
    await s.putChunks("c/in/old", 2, [chunk(2, 50)]);
    const before = summary(await s.getChunks("c/in/old", 0, 4));
    const middle = summary([await s.getChunk("c/in/old", 1)]);
    await s.deleteTransfer("c/in/old");
    const after = {
      before,
      middle,
      after: (await s.getChunks("c/in/old", 0, 4)).length,
      idbAfter: (await new IdbFileStore("t-files-legacy").getChunks("c/in/old", 0, 4)).length,
      files: await files("t-chunks-legacy"),
      records: (await s.listRecords()).map((r) => r.key),
    };
    await s.release();
    return after;
  },
  async refused() {
    const s = store();
    const tooBig = await s.putChunks("c/in/3", 0, [chunk(0, SEALED_CHUNK_BYTES + 1)]).then(() => "stored", (e) => e.name);
    const empty = await s.putChunks("c/in/3", 0, [new Uint8Array(0)]).then(() => "stored", (e) => e.name);
    return { tooBig, empty, got: (await s.getChunks("c/in/3", 0, 2)).length };
  },
  async garbage(seed) {
    // A transfer's file of random bytes (damage, or not a file this store wrote): every length
    // field is either 0, too large, or a chunk cut short, or a chunk — never an error, never
    // more than a slot holds. The engine opens each chunk (AES-GCM) before trusting it (§4).
    let x = seed;
    const next = () => ((x = (x * 1103515245 + 12345) >>> 0), x);
    // Its own folder: the files it checks are gone are only the ones it wrote.
    const s = new OpfsFileStore("t-files-garbage", "t-chunks-garbage");
    const d = await (await navigator.storage.getDirectory()).getDirectoryHandle("t-chunks-garbage", { create: true });
    const out = [];
    for (let round = 0; round < 40; round++) {
      const size = next() % (3 * SLOT_BYTES);
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i += 1) bytes[i] = next() >>> 24;
      // Some length fields made plausible, so cut-short and whole chunks are read too.
      for (let at = 0; at + 4 <= size; at += SLOT_BYTES)
        if (next() % 2) new DataView(bytes.buffer).setUint32(at, next() % (SEALED_CHUNK_BYTES + 2), true);
      const w = await (await d.getFileHandle(chunkFileName("g/in/" + round), { create: true })).createWritable();
      await w.write(bytes);
      await w.close();
      const got = await s.getChunks("g/in/" + round, 0, 4).catch((e) => e.name);
      if (typeof got === "string") return { error: got };
      for (const c of got) if (c.length === 0 || c.length > SEALED_CHUNK_BYTES) return { error: "length " + c.length };
      out.push(got.length);
      await s.deleteChunks("g/in/" + round);
    }
    await s.release();
    return { counts: out, files: await files("t-chunks-garbage") };
  },
  async noWorker() {
    // A worker that cannot start (a CSP, an old browser): chunks go to IndexedDB, as before.
    const s = new OpfsFileStore("t-files-2", "t-chunks-2", () => new Worker("/no-such-worker.js"));
    const opfs = await s.usesOpfs();
    await s.putChunks("c/in/9", 0, [chunk(0), chunk(1, 9)]);
    return {
      opfs,
      got: summary(await s.getChunks("c/in/9", 0, 3)),
      inIdb: (await new IdbFileStore("t-files-2").getChunks("c/in/9", 0, 3)).length,
    };
  },
  async wideSlots() {
    // A transfer offered in 255 KiB chunks (files.md §2, §6): slots of cs + 20 bytes, said in
    // each request. 20 full chunks and a short last one, read in one call (more than one 4 MiB
    // read of the worker's), then with the worker gone (the asynchronous API), and as the
    // default's slots (what a store that forgot the size would read): not these chunks.
    const WIDE = 261_120 + 16;
    const s = new OpfsFileStore("t-files-wide", "t-chunks-wide");
    const key = "c/in/wide";
    await s.putChunks(key, 0, Array.from({ length: 20 }, (_, i) => chunk(i, WIDE)), WIDE);
    await s.putChunks(key, 21, [chunk(21, 33)], WIDE); // chunk 20 never stored: a hole
    const d = await (await navigator.storage.getDirectory()).getDirectoryHandle("t-chunks-wide");
    const length = (await (await d.getFileHandle(chunkFileName(key))).getFile()).size;
    const all = summary(await s.getChunks(key, 0, 24, WIDE));
    const single = summary([await s.getChunk(key, 21, WIDE)]);
    const asDefault = (await s.getChunks(key, 0, 24)).filter((c) => c.length === WIDE).length;
    const bare = new OpfsFileStore("t-files-wide", "t-chunks-wide", () => new Worker("/no-such-worker.js"));
    await s.release(); // the worker lets go of the file: the asynchronous API reads it
    const without = summary(await bare.getChunks(key, 18, 6, WIDE));
    await bare.deleteTransfer(key);
    const left = await files("t-chunks-wide");
    return { length, all, single, asDefault, without, left };
  },
  async fallback() {
    // An earlier page (worker running) stored chunks 0 and 1 in the transfer's file; this page's
    // worker cannot start: it reads them through the asynchronous API, keeps chunk 2 in
    // IndexedDB, and deleting the transfer removes the file too.
    const before = new OpfsFileStore("t-files-5", "t-chunks-5");
    await before.putChunks("c/in/8", 0, [chunk(0), chunk(1, 40)]);
    await before.release();
    const s = new OpfsFileStore("t-files-5", "t-chunks-5", () => new Worker("/no-such-worker.js"));
    const opfs = await s.usesOpfs();
    const read = summary(await s.getChunks("c/in/8", 0, 3));
    await s.putChunks("c/in/8", 2, [chunk(2, 9)]);
    const all = summary(await s.getChunks("c/in/8", 0, 4));
    const one = summary([await s.getChunk("c/in/8", 1)]);
    await s.deleteTransfer("c/in/8");
    return {
      opfs,
      read,
      all,
      one,
      after: (await s.getChunks("c/in/8", 0, 4)).length,
      files: await files("t-chunks-5"),
      idbAfter: (await new IdbFileStore("t-files-5").getChunks("c/in/8", 0, 4)).length,
    };
  },
  async noSyncHandles() {
    // A worker where files have no sync access handles: IndexedDB, and no empty folder made.
    const s = new OpfsFileStore("t-files-6", "t-chunks-6", () =>
      wrappedWorker("delete FileSystemFileHandle.prototype.createSyncAccessHandle;"),
    );
    const opfs = await s.usesOpfs();
    await s.putChunks("c/in/10", 0, [chunk(0)]);
    const got = summary(await s.getChunks("c/in/10", 0, 2));
    const root = await navigator.storage.getDirectory();
    const folder = await root.getDirectoryHandle("t-chunks-6").then(() => "there", (e) => e.name);
    return { opfs, got, folder };
  },
  async opensClaim() {
    // What the store says of putOpened (opensChunks), and whether it holds: with its worker; with
    // a worker that cannot start; with one that has no WebCrypto (its \`open\` reply says so).
    const crypto = await createWebCryptoProvider();
    const key = crypto.randomBytes(32);
    const header = { id: 3, index: 0, total: 1, chunkSize: SEALED_CHUNK_BYTES };
    const frames = [{ header, sealed: await sealChunkBytes(crypto, key, header, new Uint8Array(100).fill(7)) }];
    const ask = async (s, transfer) => {
      const opens = await s.opensChunks();
      const put = await s.putOpened(transfer, 0, frames, key, SEALED_CHUNK_BYTES).then(
        (r) => (r === undefined ? "undefined" : Array.isArray(r) ? "digests" : "damaged " + r),
        (e) => e.name,
      );
      const stored = (await s.getChunks(transfer, 0, 1)).length;
      await s.deleteTransfer(transfer);
      await s.release();
      return { opens, put, stored };
    };
    return {
      worker: await ask(new OpfsFileStore("t-files-14", "t-chunks-14"), "c/in/30"),
      noWorker: await ask(
        new OpfsFileStore("t-files-14", "t-chunks-14", () => new Worker("/no-such-worker.js")),
        "c/in/31",
      ),
      noCrypto: await ask(
        new OpfsFileStore("t-files-14", "t-chunks-14", () => wrappedWorker("delete Crypto.prototype.subtle;")),
        "c/in/32",
      ),
    };
  },
  async releaseForgetsKeys() {
    // A batch that does not open leaves its transfer's key imported in the worker with no handle
    // opened; the store released (the engine stopped), the same key is imported again — it was
    // forgotten. The worker counts its importKey calls (held files: no idle close meanwhile).
    const crypto = await createWebCryptoProvider();
    const key = crypto.randomBytes(32);
    const header = { id: 4, index: 0, total: 1, chunkSize: SEALED_CHUNK_BYTES };
    const sealed = await sealChunkBytes(crypto, key, header, new Uint8Array(100).fill(9));
    const bad = sealed.slice();
    bad[5] ^= 1;
    let worker;
    const s = new OpfsFileStore(
      "t-files-15",
      "t-chunks-15",
      () =>
        (worker = wrappedWorker(
          "let imports = 0; const real = crypto.subtle.importKey.bind(crypto.subtle);" +
            "crypto.subtle.importKey = (...a) => { imports++; return real(...a); };",
          "const on = self.onmessage;" +
            "self.onmessage = (e) => (e.data.op === 'imports' ? postMessage({ imports }) : on(e));",
        )),
      HOLD,
    );
    const imports = () =>
      new Promise((resolve) => {
        const w = worker;
        const got = (e) => {
          if (e.data?.imports === undefined) return;
          w.removeEventListener("message", got);
          resolve(e.data.imports);
        };
        w.addEventListener("message", got);
        w.postMessage({ op: "imports" });
      });
    const damaged = await s.putOpened("c/in/40", 0, [{ header, sealed: bad }], key, SEALED_CHUNK_BYTES);
    const before = await imports();
    await s.release();
    const put = await s.putOpened("c/in/40", 0, [{ header, sealed }], key, SEALED_CHUNK_BYTES);
    const after = await imports();
    await s.deleteTransfer("c/in/40");
    await s.release();
    return { damaged, before, stored: Array.isArray(put), after };
  },
  async earlyApi() {
    const s = new OpfsFileStore("t-files-3", "t-chunks-3", earlyApiWorker);
    const opfs = await s.usesOpfs();
    await s.putChunks("c/in/5", 0, [chunk(0), chunk(1, 30)]);
    const got = summary(await s.getChunks("c/in/5", 0, 3));
    const inIdb = (await new IdbFileStore("t-files-3").getChunks("c/in/5", 0, 3)).length;
    await s.deleteTransfer("c/in/5");
    const after = (await s.getChunks("c/in/5", 0, 3)).length;
    await s.release();
    return { opfs, got, inIdb, after, files: await files("t-chunks-3") };
  },
  async workerDies(dying) {
    // The first \`dying\` workers started die at their first put.
    let starts = 0;
    // Names of each call's own (workerDies(1), workerDies(3)).
    const s = new OpfsFileStore(\`t-files-4-\${dying}\`, \`t-chunks-4-\${dying}\`, () => (starts++ < dying ? dyingWorker() : startOpfsWorker()));
    return { ...(await failsThenWorks(s, "c/in/7", \`t-chunks-4-\${dying}\`)), starts };
  },
  async crashMidPut() {
    // Chunks 0 and 1 confirmed; the worker dies writing 2 and 3, before it answers.
    let starts = 0;
    const s = new OpfsFileStore("t-files-11", "t-chunks-11", () => (starts++ === 0 ? crashingWorker(2) : startOpfsWorker()));
    const opfs = await s.usesOpfs();
    const confirmed = await settled(s.putChunks("c/in/14", 0, [chunk(0), chunk(1)]));
    const crashed = await settled(s.putChunks("c/in/14", 2, [chunk(2), chunk(3, 30)]));
    const waiting = s.waitingRequests;
    const got = summary(await s.getChunks("c/in/14", 0, 5));
    await s.deleteTransfer("c/in/14");
    await s.release();
    return { opfs, confirmed, crashed, waiting, got, starts, files: await files("t-chunks-11") };
  },
  async crashAfterRelease() {
    // A put on its way when the engine stops: the store is released (Delete identity removes the
    // folder next), and the worker dies after writing the put, before answering it.
    let starts = 0;
    const s = new OpfsFileStore("t-files-12", "t-chunks-12", () => (starts++ === 0 ? crashingWorker(1) : startOpfsWorker()));
    const opfs = await s.usesOpfs();
    const put = settled(s.putChunks("c/in/15", 0, [chunk(0)]));
    const released = s.release();
    const stored = await put;
    await released;
    const afterRelease = starts;
    // A call made after the release (the next engine's) starts another worker, as ever.
    const next = await settled(s.putChunks("c/in/16", 0, [chunk(0)]));
    await s.deleteTransfer("c/in/15");
    await s.deleteTransfer("c/in/16");
    await s.release();
    return { opfs, stored, waiting: s.waitingRequests, afterRelease, next, starts, files: await files("t-chunks-12") };
  },
  async lockedFile(freed) {
    // The transfer's file held by another handle when the worker opens it — as a worker started
    // again after one died finds the file the dead one's sync access handle still holds (the
    // browser lets go of it as it tears that worker down). Here the page holds it (an open
    // writable keeps a sync access handle out) and, if \`freed\`, lets go at the worker's first
    // refused open; else only once the put has answered.
    // Names of each call's own (lockedFile(true), lockedFile(false)).
    const dir = \`t-chunks-13-\${freed}\`;
    const transfer = "c/in/17";
    const refused = [];
    let writer;
    const start = () => {
      const w = wrappedWorker(
        "const P = FileSystemFileHandle.prototype; const open = P.createSyncAccessHandle;" +
          "P.createSyncAccessHandle = async function () {" +
          "  try { return await open.call(this); } catch (e) { self.postMessage({ refused: e.name }); throw e; }" +
          "};",
      );
      w.addEventListener("message", (e) => {
        if (!e.data?.refused) return;
        refused.push(e.data.refused);
        if (freed && refused.length === 1) void writer.abort();
      });
      return w;
    };
    const s = new OpfsFileStore(\`t-files-13-\${freed}\`, dir, start);
    const opfs = await s.usesOpfs();
    await s.putChunks(transfer, 0, [chunk(0)]);
    await s.release(); // the worker lets go of the file: the page can take it
    const d = await (await navigator.storage.getDirectory()).getDirectoryHandle(dir);
    writer = await (await d.getFileHandle(chunkFileName(transfer))).createWritable({ keepExistingData: true });
    const put = await settled(s.putChunks(transfer, 1, [chunk(1, 20)]));
    if (!freed) await writer.abort();
    const got = summary(await s.getChunks(transfer, 0, 3));
    await s.deleteTransfer(transfer);
    await s.release();
    return { opfs, put: put.split(":")[0], refused: refused[0] ?? "none", got, files: await files(dir) };
  },
  async unreadableReply(bad) {
    let starts = 0;
    // Names of each call's own (unreadableReply(1), unreadableReply(3)), apart from keptThenIdle's.
    const s = new OpfsFileStore(\`t-files-16-\${bad}\`, \`t-chunks-16-\${bad}\`, () => (starts++ < bad ? unreadableReplyWorker() : startOpfsWorker()));
    return { ...(await failsThenWorks(s, "c/in/12", \`t-chunks-16-\${bad}\`)), starts };
  },
  async postThrows() {
    // postMessage throwing at once (a DataCloneError: a detached buffer in the transfer list).
    let thrown = 0;
    const start = () => {
      const w = startOpfsWorker();
      const post = w.postMessage.bind(w);
      w.postMessage = (m, t) => {
        if (m.op === "put" && thrown++ === 0) throw new DOMException("An ArrayBuffer is detached", "DataCloneError");
        return post(m, t);
      };
      return w;
    };
    return failsThenWorks(new OpfsFileStore("t-files-10", "t-chunks-10", start), "c/in/13", "t-chunks-10");
  },
  async release() {
    // Delete identity (app/device-files.ts) removes the folder once the engine let go of it.
    const s = new OpfsFileStore("t-files-7", "t-chunks-7", startOpfsWorker, HOLD);
    await s.putChunks("c/in/4", 0, [chunk(0)]);
    const root = await navigator.storage.getDirectory();
    const held = await root.removeEntry("t-chunks-7", { recursive: true }).then(() => "removed", (e) => e.name);
    await s.release();
    const released = await root.removeEntry("t-chunks-7", { recursive: true }).then(() => "removed", (e) => e.name);
    return { held, released };
  },
  async forgetHeld() {
    // A chunk stored after the engine's release (a write that was on its way): its file is still
    // held open when Delete identity removes the folder — the app's folder and database names.
    // The worker lets go while Delete identity waits: at its idle close in the app; here, where
    // the idle close is far off, the store is released at Delete identity's first refused
    // removal — so the removal was refused once, and tried again.
    const s = new OpfsFileStore(undefined, undefined, startOpfsWorker, HOLD);
    await s.putChunks("c/in/6", 0, [chunk(0)]);
    const root = await navigator.storage.getDirectory();
    const there = () => root.getDirectoryHandle("loft-file-chunks").then(() => "there", (e) => e.name);
    const before = await there();
    const held = await root.removeEntry("loft-file-chunks", { recursive: true }).then(() => "removed", (e) => e.name);
    const P = FileSystemDirectoryHandle.prototype;
    const removeEntry = P.removeEntry;
    const tries = [];
    P.removeEntry = async function (name, options) {
      if (name !== "loft-file-chunks") return removeEntry.call(this, name, options);
      try {
        await removeEntry.call(this, name, options);
        tries.push("removed");
      } catch (e) {
        tries.push(e.name);
        if (tries.length === 1) await s.release();
        throw e;
      }
    };
    try {
      await forgetDeviceFiles();
    } finally {
      P.removeEntry = removeEntry;
    }
    return { before, held, tries, after: await there() };
  },
  async idleClose() {
    // The worker lets go of a file unused for its idle delay (short here)…
    idler = new OpfsFileStore("t-files-8", "t-chunks-8", startOpfsWorker, { idleCloseMs: 50 });
    await idler.putChunks("c/in/11", 0, [chunk(0)]);
    return chunkFileName("c/in/11");
  },
  writable,
  async idleReopen() {
    // … and opens it again at the next write (a handle closed and kept would refuse it).
    await idler.putChunks("c/in/11", 1, [chunk(1, 30)]);
    const got = summary(await idler.getChunks("c/in/11", 0, 3));
    await idler.deleteTransfer("c/in/11");
    await idler.release();
    return { got, files: await files("t-chunks-8") };
  },
};
`;

let browser: Browser;
let site: { url: string; close: () => void };
let page: Page;
const outDir = join(tmpdir(), `loft-e2e-file-store-${process.pid}`);

beforeAll(async () => {
  await buildPage(PAGE_SOURCE, outDir);
  site = await servePage(outDir);
  browser = await launchChromium();
  page = await (await browser.newContext()).newPage();
  await page.goto(site.url);
  await page.waitForFunction(() => "loftBench" in window);
});

afterAll(async () => {
  await browser?.close();
  site?.close();
  await rm(outDir, { recursive: true, force: true });
});

/** [length, first byte, last byte] of a chunk as the page summarised it. */
const c = (index: number, n = 65_040) => [n, index + 1, index + 1];

describe("the OPFS file store in Chromium", () => {
  it("keeps a slot per chunk: its length, then a whole sealed chunk", async () => {
    expect(await callPage(page, "slots")).toEqual({ slot: 65_044, header: 4, sealed: 65_040 });
  });

  it("opens and digests a batch in its worker before writing it (putOpened): the plaintexts' digests; a batch with a chunk that does not open is not written", async () => {
    const r = await callPage<Record<string, unknown>>(page, "opened");
    expect(r.digests).toEqual(r.expected);
    expect(r.stored).toEqual([65_040, 65_040, 65_040]);
    expect(r.damaged).toBe(1);
    expect(r.afterDamaged).toBe(3);
    expect(r.otherKey).toBe(0);
    expect(r.rest).toEqual(r.expectedRest);
    expect(r.same).toBe(true);
  });

  it("reads the sender's sealed copy and opens it in its worker (getOpened): whether each chunk opened, a changed slot not, a hole left to the caller", async () => {
    const r = await callPage<Record<string, unknown>>(page, "readOpened");
    expect(r.opened).toEqual([true, true, true, true, true]);
    expect(r.same).toBe(true);
    expect(r.damaged).toEqual([true, true, false, true, true]);
    expect(r.later).toEqual([true, true]);
    expect(r.otherKey).toEqual([false, false, false, false, false]);
    expect(r.hole).toBe("undefined");
  });

  it("its worker opens what a get read by slot (a hole shifts no nonce), and refuses gets and opens the store never makes, with what is wrong", async () => {
    // Before, a get's `open` with fewer nonces than slots, or a nonce or AAD of another size or
    // type, answered those slots as "did not open" (the sender's copy said damaged: sealed again
    // from the file, or the transfer failed), a put's as a chunk changed on the way; and a get of
    // any number of slots read them all into one buffer.
    const r = await callPage<Record<string, unknown>>(page, "rawGets");
    expect(r.opens).toBe(true);
    const hole = { indexes: [0, 1, 3], opened: [true, true, true] };
    expect(r.hole).toEqual(hole);
    expect(r.fewer).toBe("RangeError: one nonce and one AAD per chunk");
    expect(r.shortNonce).toBe("RangeError: not a chunk nonce");
    expect(r.textAad).toBe("RangeError: not a chunk AAD");
    expect(r.shortKey).toBe("RangeError: not a chunk key");
    expect(r.tooMany).toBe("RangeError: not slots the store reads");
    expect(r.before).toBe("RangeError: not slots the store reads");
    expect(r.half).toBe("RangeError: not slots the store reads");
    expect(r.badPut).toBe("RangeError: not a chunk nonce");
    expect(r.afterPut).toEqual({ indexes: [] }); // nothing of the refused put written
    expect(r.after).toEqual(hole);
  });

  it("its worker writes a put's slots' view, not the rest of a longer buffer, and gives it back; a get reads into the page's buffer only when it holds the slots", async () => {
    const r = await callPage<Record<string, unknown>>(page, "rawSpareInto");
    const read = (buffer: number) => ({ indexes: [0, 1], same: true, buffer });
    expect(r).toEqual({
      put: { error: undefined, spare: 3 * 65_044 },
      small: read(65_044 + 4 + 7), // a buffer of the worker's own: what the file holds
      notBuffer: read(65_044 + 4 + 7),
      into: read(4 * 65_044),
      fileBytes: 65_044 + 4 + 7, // the slots' view, not the dirty slot after it
    });
  });

  // The sender's check of its copy asks the worker as a put does (`#ask`): a worker that dies
  // under it is started again and the read asked again; dying at every try, the read fails with
  // the worker's failure (the engine then reads that block from the file, or fails the transfer as
  // its copy gone: web/src/engine/files/transfers.test.ts), nothing left waiting.
  it("a get that opens what it reads, whose worker dies under it, is asked again of another worker: answered whole", async () => {
    expect(await callPage(page, "getDies", 1)).toEqual({
      opfs: true,
      checked: { opened: [true, true, true], same: true },
      waiting: 0,
      again: { opened: [true, true, true], same: true },
      starts: 2,
    });
  });

  it("a get that opens what it reads, whose worker dies at every try, fails after three workers with the worker's failure; the next call starts another", async () => {
    expect(await callPage(page, "getDies", 3)).toEqual({
      opfs: true,
      checked: "Error: the file store's worker failed: Uncaught Error: the worker died reading",
      waiting: 0,
      again: { opened: [true, true, true], same: true },
      starts: 4,
    });
  });

  it("stores chunks in one file per transfer and reads them back in order, holes skipped, across a reload", async () => {
    const r = await callPage<Record<string, unknown>>(page, "roundTrip");
    expect(r.opfs).toBe(true);
    expect(r.files).toEqual(["c%2Fin%2F1.chunks"]);
    expect(r.all).toEqual([c(0), c(1), c(2, 100), c(5, 17)]);
    expect(r.first2).toEqual([c(0), c(1)]);
    expect(r.one).toEqual([c(2, 100)]);
    expect(r.hole).toBe(true);
    expect(r.past).toBe(0);
    expect(r.other).toBe(0);
    expect(r.records).toEqual(["c/in/1"]);
    await page.reload();
    await page.waitForFunction(() => "loftBench" in window);
    expect(await callPage(page, "afterReload")).toEqual({
      all: [c(0), c(1), c(2, 100), c(5, 17)],
      records: ["c/in/1"],
    });
    expect(await callPage(page, "overwrite")).toEqual([c(0), c(1), c(7, 60), c(5, 17)]);
  });

  it("lays each put out in a buffer its worker gave back, over an earlier batch's bytes: stored and read back as put", async () => {
    const r = await callPage<Record<string, unknown>>(page, "reusedBuffers");
    expect(r.opfs).toBe(true);
    expect(r.afterFirst).toEqual([2 * 65_044]);
    expect(r.afterSecond).toEqual([2 * 65_044]); // the same buffer, given back again
    expect(r.afterThird).toEqual([3 * 65_044, 2 * 65_044]);
    expect(r.all).toEqual([c(0), c(1), c(2, 100), c(3, 7), c(4), c(5), c(6, 9)]);
  });

  it("reads into a buffer of an earlier read the caller gave back (reuse): the slots read, whatever it held", async () => {
    const r = await callPage<Record<string, unknown>>(page, "reusedReads");
    expect(r.size0).toBe(3 * 65_044);
    expect(r.kept).toEqual([3 * 65_044]);
    expect(r.taken).toEqual([]); // read into
    expect(r.same).toBe(true);
    expect(r.readInto).toBe(3 * 65_044);
    expect(r.opened).toEqual([true, true]);
    expect(r.sameAll).toBe(true);
    expect(r.small).toEqual([100]);
  });

  it("lets go of the buffers it kept once unused for the idle delay, and at once when released", async () => {
    const k = (puts: number[], reads: number[]) => ({ puts, reads });
    expect(await callPage(page, "keptThenIdle")).toEqual(k([2 * 65_044], [1000]));
    await expect.poll(() => callPage(page, "kept"), { timeout: 30_000 }).toEqual(k([], []));
    expect(await callPage(page, "keptThenReleased")).toEqual({
      before: k([65_044], [1000]),
      held: k([65_044], [1000]),
      after: k([], []),
    });
  });

  it("reads chunks an earlier version left in IndexedDB, and deleting a transfer deletes its file and those", async () => {
    expect(await callPage(page, "legacy")).toEqual({
      before: [c(0), c(1), c(2, 50)],
      middle: [c(1)],
      after: 0,
      idbAfter: 0,
      files: [],
      records: [],
    });
  });

  it("refuses a chunk a slot cannot hold, storing nothing", async () => {
    expect(await callPage(page, "refused")).toEqual({ tooBig: "RangeError", empty: "RangeError", got: 0 });
  });

  it("reads a file of garbage as chunks no larger than a slot, never an error", async () => {
    const r = await callPage<{ counts?: number[]; files?: string[]; error?: string }>(page, "garbage", 7);
    expect(r.error).toBeUndefined();
    expect(r.counts).toHaveLength(40);
    expect(r.files).toEqual([]);
  });

  it("keeps chunks in IndexedDB when its worker cannot start", async () => {
    expect(await callPage(page, "noWorker")).toEqual({ opfs: false, got: [c(0), c(1, 9)], inIdb: 2 });
  });

  it("a transfer in 255 KiB chunks has slots of its size: read back in order, holes skipped, with and without the worker", async () => {
    const wide = 261_136;
    const r = await callPage<Record<string, unknown>>(page, "wideSlots");
    // Chunk 21's slot at 21 × (cs + 20), its length field, 33 bytes.
    expect(r.length).toBe(21 * (wide + 4) + 4 + 33);
    expect(r.all).toEqual([...Array.from({ length: 20 }, (_, i) => c(i, wide)), c(21, 33)]);
    expect(r.single).toEqual([c(21, 33)]);
    expect(r.asDefault).toBe(0);
    expect(r.without).toEqual([c(18, wide), c(19, wide), c(21, 33)]);
    expect(r.left).toEqual([]);
  });

  it("without its worker, reads the chunks an earlier page stored in the transfer's file, and deleting the transfer removes that file", async () => {
    expect(await callPage(page, "fallback")).toEqual({
      opfs: false,
      read: [c(0), c(1, 40)],
      all: [c(0), c(1, 40), c(2, 9)],
      one: [c(1, 40)],
      after: 0,
      files: [],
      idbAfter: 0,
    });
  });

  it("where files have no sync access handles, keeps chunks in IndexedDB and makes no folder", async () => {
    expect(await callPage(page, "noSyncHandles")).toEqual({
      opfs: false,
      got: [c(0)],
      folder: "NotFoundError",
    });
  });

  // Before session 19 the engine took any store with putOpened for one that opens chunks: the
  // OPFS store has it even where its worker cannot start, and a worker without WebCrypto was asked
  // to open and failed the put (TypeError: the transfer as `storage`).
  it("says it opens chunks (opensChunks) only where its worker started and has WebCrypto; elsewhere putOpened stores nothing and answers undefined", async () => {
    expect(await callPage(page, "opensClaim")).toEqual({
      worker: { opens: true, put: "digests", stored: 1 },
      noWorker: { opens: false, put: "undefined", stored: 0 },
      noCrypto: { opens: false, put: "undefined", stored: 0 },
    });
  });

  it("forgets, when released, the key of a transfer whose batch did not open (no handle was opened for it)", async () => {
    expect(await callPage(page, "releaseForgetsKeys")).toEqual({
      damaged: 0,
      before: 1,
      stored: true,
      after: 2,
    });
  });

  it("stores and reads back where getSize, flush and close answer with a promise (the first browsers with sync access handles)", async () => {
    expect(await callPage(page, "earlyApi")).toEqual({
      opfs: true,
      got: [c(0), c(1, 30)],
      inIdb: 0,
      after: 0,
      files: [],
    });
  });

  // Before session 17 what a dead worker was asked failed (a transfer being received ended as
  // `storage`) and only the next call started another worker; now the request is asked again of
  // the new one, up to WORKER_TRIES (3) times in all (docs/protocol/files.md §6).
  it("starts its worker again when it dies under a put, and asks the put again there: stored", async () => {
    expect(await callPage(page, "workerDies", 1)).toEqual({
      opfs: true,
      first: "stored",
      waiting: 0,
      again: "stored",
      got: [c(0), c(1, 20)],
      starts: 2,
      files: [],
    });
  });

  it("a worker that dies after writing a put, before answering: the put asked again, nothing confirmed before lost", async () => {
    expect(await callPage(page, "crashMidPut")).toEqual({
      opfs: true,
      confirmed: "stored",
      crashed: "stored",
      waiting: 0,
      got: [c(0), c(1), c(2), c(3, 30)],
      starts: 2,
      files: [],
    });
  });

  // A worker started again after one died may find the file still locked by the dead one's sync
  // access handle, let go of a moment later: before, the put failed at once with
  // NoModificationAllowedError (the transfer as `storage`); now the worker waits for the lock,
  // bounded (opfs-worker.ts `unlocked`; docs/protocol/files.md §6).
  it("a file another handle still holds is waited for when the worker opens it: the put stored once it is let go", async () => {
    expect(await callPage(page, "lockedFile", true)).toEqual({
      opfs: true,
      put: "stored",
      refused: "NoModificationAllowedError",
      got: [c(0), c(1, 20)],
      files: [],
    });
  });

  it("a file held for good is waited for only so long: the put fails with the lock's error, and nothing is lost", async () => {
    expect(await callPage(page, "lockedFile", false)).toEqual({
      opfs: true,
      put: "NoModificationAllowedError",
      refused: "NoModificationAllowedError",
      got: [c(0)],
      files: [],
    });
  });

  it("a put whose worker dies after the store was released is not asked again: no worker started after the release for it", async () => {
    // Before, the put was asked again of a new worker after the engine let go of the files: the
    // file opened again past the release, and written again after Delete identity removed it.
    expect(await callPage(page, "crashAfterRelease")).toEqual({
      opfs: true,
      stored: "Error: the file store's worker failed: Uncaught Error: the worker died after writing",
      waiting: 0,
      afterRelease: 1,
      next: "stored",
      starts: 2,
      files: [],
    });
  });

  it("a put whose worker dies at every try fails after three workers, nothing left waiting; the next call starts another", async () => {
    expect(await callPage(page, "workerDies", 3)).toEqual({
      opfs: true,
      first: "Error: the file store's worker failed: Uncaught Error: the worker died",
      waiting: 0,
      again: "stored",
      got: [c(0), c(1, 20)],
      starts: 4,
      files: [],
    });
  });

  it("a reply from its worker that cannot be read: the request asked again of another worker", async () => {
    expect(await callPage(page, "unreadableReply", 1)).toEqual({
      opfs: true,
      first: "stored",
      waiting: 0,
      again: "stored",
      got: [c(0), c(1, 20)],
      starts: 2,
      files: [],
    });
  });

  it("replies that cannot be read at every try fail the request after three workers, nothing left waiting", async () => {
    expect(await callPage(page, "unreadableReply", 3)).toEqual({
      opfs: true,
      first: "Error: the file store's worker sent a reply that could not be read",
      waiting: 0,
      again: "stored",
      got: [c(0), c(1, 20)],
      starts: 4,
      files: [],
    });
  });

  it("a request its worker could not be sent is asked again, nothing left waiting", async () => {
    expect(await callPage(page, "postThrows")).toEqual({
      opfs: true,
      first: "stored",
      waiting: 0,
      again: "stored",
      got: [c(0), c(1, 20)],
      files: [],
    });
  });

  it("lets go of its files when released, so Delete identity can remove them", async () => {
    expect(await callPage(page, "release")).toEqual({
      held: "NoModificationAllowedError",
      released: "removed",
    });
  });

  it("Delete identity removes the folder even while a file in it is still held open (it waits for the worker to let go)", async () => {
    expect(await callPage(page, "forgetHeld")).toEqual({
      before: "there",
      held: "NoModificationAllowedError",
      tries: ["NoModificationAllowedError", "removed"],
      after: "NotFoundError",
    });
  });

  it("lets go of a file unused for its idle delay, and opens it again at the next write", async () => {
    const file = await callPage<string>(page, "idleClose");
    // Held by the worker's sync access handle until the idle close, then writable from the page.
    await expect.poll(() => callPage(page, "writable", "t-chunks-8", file)).toBe("free");
    expect(await callPage(page, "idleReopen")).toEqual({ got: [c(0), c(1, 30)], files: [] });
  });
});
