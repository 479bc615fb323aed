/**
 * docs/vectors/chat-v1.json (scripts/gen-chat-vectors.ts; recomputed from docs/protocol/chat.md by
 * test/interop/vectorcheck/chat.py) against the code that writes and reads what it holds:
 * web/src/net/signal-payload.ts (§1) and web/src/engine/wire.ts (§3, §5). The file is what the code
 * produces today, every input in it reads (or is refused) as the file says, and chat.md prints the
 * bytes the file holds.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { fromHex } from "../../../core/bytes.ts";
import type { SignalKind } from "../../../core/wire/signaling.ts";
import { CHAT_VECTOR_FILE, chatVectorText } from "../../../scripts/gen-chat-vectors.ts";
import { decodeSignalPayload } from "../net/signal-payload.ts";
import { decodeAppMessage, decodeAppPlaintext, decodeSessionFrame } from "./wire.ts";

type Read = { label: string; code: string };
const file = JSON.parse(readFileSync(CHAT_VECTOR_FILE, "utf8")) as {
  signals: { label: string; kind: SignalKind; reads: string; payload: string }[];
  signalReads: (Read & { kind: SignalKind; payload: string })[];
  hellos: { label: string; frame: string; fields: { v: number; send: boolean } }[];
  pings: { label: string; frame: string }[];
  frameReads: (Read & { frame: string })[];
  apps: { label: string; fields: Record<string, unknown>; padded: string }[];
  appReads: (Read & { padded: string })[];
  bundles: { label: string; of: number[]; bundle: string }[];
  bundleReads: (Read & { bundle?: string; zeros?: number })[];
};
const codeOf = (r: { ok: true } | { ok: false; error: { code: string } }) => (r.ok ? "reads" : r.error.code);
const spaced = (hex: string) => hex.replace(/(..)(?=.)/g, "$1 ");
const chatMd = readFileSync(new URL("../../../docs/protocol/chat.md", import.meta.url), "utf8");

describe("the vectors of docs/protocol/chat.md §1, §3, §5", () => {
  it("scripts/gen-chat-vectors.ts regenerates the committed file byte for byte", () => {
    expect(chatVectorText()).toBe(readFileSync(CHAT_VECTOR_FILE, "utf8"));
  });

  it("every signaling payload reads as its kind, and each refused one with the file's code", () => {
    for (const s of file.signals) {
      const r = decodeSignalPayload(s.kind, fromHex(s.payload));
      expect([s.label, r.ok && r.value.kind]).toEqual([s.label, s.reads]);
    }
    expect(file.signals.filter((s) => s.kind === "bye").length).toBe(5); // every reason
    for (const s of file.signalReads)
      expect([s.label, codeOf(decodeSignalPayload(s.kind, fromHex(s.payload)))]).toEqual([s.label, s.code]);
    expect(file.signalReads.filter((s) => s.code !== "reads").length).toBeGreaterThan(10);
  });

  it("every HELLO, PING and PONG reads, and each refused frame with the file's code", () => {
    for (const h of file.hellos) {
      const r = decodeSessionFrame(fromHex(h.frame));
      expect([h.label, r.ok && r.value.type === "hello" && r.value.hello]).toMatchObject([
        h.label,
        { version: h.fields.v, canSend: h.fields.send },
      ]);
    }
    expect(file.pings.map((p) => codeOf(decodeSessionFrame(fromHex(p.frame))))).toEqual(["reads", "reads"]);
    for (const f of file.frameReads)
      expect([f.label, codeOf(decodeSessionFrame(fromHex(f.frame)))]).toEqual([f.label, f.code]);
  });

  it("every application message reads as its fields, and each refused one with the file's code", () => {
    for (const a of file.apps) {
      const r = decodeAppMessage(fromHex(a.padded));
      expect([a.label, r.ok && r.value.t]).toEqual([a.label, a.fields.t]);
    }
    for (const a of file.appReads)
      expect([a.label, codeOf(decodeAppMessage(fromHex(a.padded)))]).toEqual([a.label, a.code]);
  });

  it("every bundle reads as its messages in order, and each refused one with the file's code (§5, 'Bundles')", () => {
    for (const b of file.bundles) {
      const r = decodeAppPlaintext(fromHex(b.bundle));
      const ids = b.of.map((i) => (file.apps[i]!.fields as { id: string }).id);
      expect([b.label, r.ok && r.value.map((m) => (m as { id: string }).id)]).toEqual([b.label, ids]);
    }
    for (const b of file.bundleReads) {
      const bytes = b.bundle === undefined ? new Uint8Array(b.zeros ?? 0) : fromHex(b.bundle);
      expect([b.label, codeOf(decodeAppPlaintext(bytes))]).toEqual([b.label, b.code]);
    }
    expect(chatMd).toContain(
      `\`bundles\`): two \`msg\` in 256-byte buckets are \`${spaced(file.bundles[0]!.bundle.slice(0, 8))}\``,
    );
  });

  it("chat.md prints the bye and both HELLOs the file holds, and names the file", () => {
    expect(chatMd).toContain(spaced(file.signals[0]!.payload));
    expect(chatMd).toContain(spaced(file.hellos[0]!.frame));
    expect(chatMd).toContain(spaced(file.hellos[1]!.frame));
    expect(chatMd).toContain(`${spaced(file.apps[0]!.padded.slice(0, 16))}  80 00 … 00   (256 bytes)`);
    expect(chatMd).toContain("[docs/vectors/chat-v1.json](../vectors/chat-v1.json)");
  });
});
