/**
 * docs/vectors/relay-errors-v1.json (scripts/gen-relay-errors-vectors.ts; recomputed from
 * docs/protocol/relay.md by test/interop/vectorcheck/relay.py): the file is what the code produces,
 * a real relay on loopback sends these bytes for the refusals it is given, the client reads every
 * frame as the file says, and relay.md prints the bytes the file holds.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromHex, toHex } from "../../core/bytes.ts";
import { encodeCanonical } from "../../core/codec/codec.ts";
import { WIRE_ERROR_CODES } from "../../core/relay/errors.ts";
import { encodeClientFrame } from "../../core/relay/protocol.ts";
import { RawSocket, startTestRelay, type TestRelay } from "../../relay-ws/testing.ts";
import {
  clientRead,
  RELAY_ERRORS_VECTOR_FILE,
  relayErrorsVectorText,
} from "../../scripts/gen-relay-errors-vectors.ts";

type Frame = { e: string; i?: number; frame: string; client: string };
const file = JSON.parse(readFileSync(RELAY_ERRORS_VECTOR_FILE, "utf8")) as {
  errors: Frame[];
  requestIds: Frame[];
  reads: { label: string; frame: string; code: string; i?: number; wire?: string }[];
};
const relayMd = readFileSync(new URL("../../docs/protocol/relay.md", import.meta.url), "utf8").replace(
  /\s+/g,
  " ",
);
const find = (e: string, i?: number) =>
  [...file.errors, ...file.requestIds].find((f) => f.e === e && f.i === i)!.frame;

describe("the ERR vectors of docs/protocol/relay.md", () => {
  it("scripts/gen-relay-errors-vectors.ts regenerates the committed file byte for byte", () => {
    expect(relayErrorsVectorText()).toBe(readFileSync(RELAY_ERRORS_VECTOR_FILE, "utf8"));
  });

  it("holds every wire code with and without a request id, and the client reads each as the file says", () => {
    expect(file.errors.map((f) => `${f.e}/${f.i}`).sort()).toEqual(
      WIRE_ERROR_CODES.flatMap((e) => [`${e}/7`, `${e}/undefined`]).sort(),
    );
    for (const f of [...file.errors, ...file.requestIds])
      expect([f.e, f.i, clientRead(fromHex(f.frame))]).toEqual([
        f.e,
        f.i,
        { code: f.client, ...(f.i === undefined ? {} : { i: f.i }) },
      ]);
    for (const r of file.reads) {
      const { label, frame, ...read } = r;
      expect([label, clientRead(fromHex(frame))]).toEqual([label, read]);
    }
  });

  it("relay.md prints the file's bytes: ERR AUTH for request 2, SOURCE_RATE and STORE_RATE for 7", () => {
    const spaced = (hex: string) => hex.replace(/(..)(?=.)/g, "$1 ");
    expect(find("AUTH", 2)).toBe("83a165a441555448a16902a16ba3455252");
    expect(relayMd).toContain("`83 a1 65 a4 41555448 a1 69 02 a1 6b a3 455252`");
    expect(relayMd).toContain(spaced(find("SOURCE_RATE", 7)));
    expect(relayMd).toContain(spaced(find("STORE_RATE", 7)));
    expect(relayMd).toContain("[docs/vectors/relay-errors-v1.json](../vectors/relay-errors-v1.json)");
  });

  describe("a real relay on loopback sends the file's bytes", () => {
    let relay: TestRelay;
    beforeAll(async () => {
      relay = await startTestRelay();
    });
    afterAll(async () => {
      await relay.close();
    });

    it("MALFORMED without i, UNKNOWN and SCHEMA with the request's i, AUTH for request 2", async () => {
      const s = await RawSocket.open(relay.url);
      const next = async () => toHex((await s.next())!);
      s.send("PING", false); // a text message
      expect(await next()).toBe(find("MALFORMED"));
      s.send(new Uint8Array([0xc1]));
      expect(await next()).toBe(find("MALFORMED"));
      s.send(encodeClientFrame(encodeCanonical({ k: "NOPE", i: 7 })));
      expect(await next()).toBe(find("UNKNOWN", 7));
      s.send(encodeClientFrame(encodeCanonical({ k: "GET", i: 7, q: new Uint8Array(5) })));
      expect(await next()).toBe(find("SCHEMA", 7));
      // GET of a queue that does not exist, unsigned: AUTH (relay.md §Errors)
      s.send(encodeClientFrame(encodeCanonical({ k: "GET", i: 2, q: new Uint8Array(24) })));
      expect(await next()).toBe(find("AUTH", 2));
      s.ws.close();
      await s.closed;
    });
  });
});
