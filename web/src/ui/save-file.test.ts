/**
 * The streamed save's batching (ui/save-file.ts `batches`; docs/protocol/files.md §6): whatever
 * sizes the chunks come in, the writes are whole batches but the last, and together they are
 * exactly the stream's bytes, in order.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { batches } from "./save-file.ts";

async function run(chunks: Uint8Array[], size: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  const source = new ReadableStream<Uint8Array>({
    start(c) {
      for (const x of chunks) c.enqueue(x);
      c.close();
    },
  });
  await source
    .pipeThrough(batches(size))
    .pipeTo(new WritableStream({ write: (w) => void out.push(w.slice()) }));
  return out;
}

describe("batches: the streamed save's writes", () => {
  it("a received file's chunks (63.5 KiB, the last shorter) go as 1 MiB writes", async () => {
    const chunk = (n: number, len = 65_024) => new Uint8Array(len).fill(n);
    const chunks = [...Array.from({ length: 20 }, (_, n) => chunk(n)), chunk(20, 100)];
    const writes = await run(chunks, 1024 * 1024);
    expect(writes.map((w) => w.length)).toEqual([1024 * 1024, 20 * 65_024 + 100 - 1024 * 1024]);
    expect(Buffer.concat(writes)).toEqual(Buffer.concat(chunks));
  });

  it("any chunk sizes: whole batches but the last, the same bytes in order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
        fc.integer({ min: 1, max: 256 }),
        async (chunks, size) => {
          const writes = await run(chunks, size);
          for (const w of writes.slice(0, -1)) expect(w.length).toBe(size);
          for (const w of writes) expect(w.length).toBeGreaterThan(0);
          expect(Buffer.concat(writes)).toEqual(Buffer.concat(chunks));
        },
      ),
      { numRuns: 300 },
    );
  });
});
