/**
 * host/tcp-link.ts: the 2-byte big-endian framing (Noise §13's recommendation) reassembles any
 * split of the byte stream, and a TcpLink pair over loopback carries messages in order, refuses
 * frames over 65535 bytes, and propagates close.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeFrame, FrameReader, listenTcp, TcpLink } from "../../host/tcp-link.ts";
import { FUZZ_RUNS } from "../support/fuzz.ts";

describe("FrameReader", () => {
  it("reassembles frames however the stream is cut (including empty frames)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (messages, cuts) => {
          const stream = Buffer.concat(messages.map(encodeFrame));
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
          const reader = new FrameReader();
          const out: Uint8Array[] = [];
          let from = 0;
          for (const p of [...points, stream.length]) {
            out.push(...reader.push(stream.subarray(from, p)));
            from = p;
          }
          expect(out.map((m) => Buffer.from(m).toString("hex"))).toEqual(
            messages.map((m) => Buffer.from(m).toString("hex")),
          );
          expect(reader.partial).toBe(false);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("writes the length big-endian and refuses more than 65535 bytes", () => {
    expect([...encodeFrame(new Uint8Array(258)).subarray(0, 2)]).toEqual([1, 2]);
    expect(encodeFrame(new Uint8Array(65535)).length).toBe(65537);
    expect(() => encodeFrame(new Uint8Array(65536))).toThrow(/LOFT_ERR_FRAME_TOO_LARGE/);
  });

  it("reports a stream cut inside a frame as partial", () => {
    const reader = new FrameReader();
    expect(reader.push(encodeFrame(new Uint8Array(10)).subarray(0, 5))).toEqual([]);
    expect(reader.partial).toBe(true);
  });
});

describe("TcpLink over loopback", () => {
  it("carries messages both ways in order, then propagates close as remote-closed", async () => {
    let accepted!: (l: TcpLink) => void;
    const serverSide = new Promise<TcpLink>((r) => {
      accepted = r;
    });
    const listener = await listenTcp("127.0.0.1", 0, (l) => accepted(l));
    const client = await TcpLink.connect("127.0.0.1", listener.port);
    const server = await serverSide;
    expect(client.state).toBe("open");
    const big = new Uint8Array(65535).fill(7);
    client.send(new Uint8Array([1]));
    client.send(big);
    client.send(new Uint8Array(0));
    expect(await server.receive()).toEqual(new Uint8Array([1]));
    expect(await server.receive()).toEqual(big);
    expect(await server.receive()).toEqual(new Uint8Array(0));
    server.send(new Uint8Array([9, 9]));
    expect(await client.receive()).toEqual(new Uint8Array([9, 9]));
    expect(() => client.send(new Uint8Array(65536))).toThrow(/LOFT_ERR_FRAME_TOO_LARGE/);
    client.close("done");
    expect((await server.closed).reason).toBe("remote-closed");
    await expect(server.receive()).rejects.toThrow(/LOFT_ERR_LINK_CLOSED/);
    await listener.close();
  });

  it("rejects connect() to a closed port", async () => {
    const listener = await listenTcp("127.0.0.1", 0, () => {});
    const port = listener.port;
    await listener.close();
    await expect(TcpLink.connect("127.0.0.1", port)).rejects.toThrow();
  });
});
