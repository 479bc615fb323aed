/**
 * The byte-level examples in docs/protocol/identity.md and docs/protocol/wire.md are checked
 * against the vectors and the encoders, so the documentation cannot drift from the code.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { VECTORS_DIR } from "../../scripts/gen-identity-vectors.ts";
import { fromHex, toHex, utf8 } from "../bytes.ts";
import { chunkMessage } from "../codec/chunk.ts";
import { padToBlock } from "../codec/padding.ts";
import { encodeVersionHeader } from "../codec/version.ts";
import { srempCodec } from "../wire/sremp.ts";

const docs = join(VECTORS_DIR, "..", "protocol");
const identityMd = readFileSync(join(docs, "identity.md"), "utf8");
const wireMd = readFileSync(join(docs, "wire.md"), "utf8");
const vectors = JSON.parse(readFileSync(join(VECTORS_DIR, "identity-vectors.json"), "utf8"));
const alice = vectors.identities[0];
const safety = JSON.parse(readFileSync(join(VECTORS_DIR, "identity-safety-codes.json"), "utf8"));
const links = JSON.parse(readFileSync(join(VECTORS_DIR, "identity-contact-links.json"), "utf8"));

/** Bytes of an annotated line: two-digit hex tokens and "quoted" UTF-8 strings, in order. */
function annotated(lines: string): Uint8Array {
  const parts: number[] = [];
  for (const token of lines.match(/"[^"]*"|\b[0-9a-f]{2}\b/g) ?? []) {
    if (token.startsWith('"')) parts.push(...utf8(token.slice(1, -1)));
    else parts.push(Number.parseInt(token, 16));
  }
  return new Uint8Array(parts);
}

/** The lines following `marker` up to the closing fence. */
function block(doc: string, marker: string): string {
  const start = doc.indexOf(marker);
  expect(start, marker).toBeGreaterThanOrEqual(0);
  const from = start + marker.length;
  return doc.slice(from, doc.indexOf("```", from));
}

describe("docs/protocol/identity.md worked example", () => {
  it("names the vector's keys, sizes, signature and seed", () => {
    expect(identityMd).toContain(`c4 20 ${alice.identity_key}`);
    expect(identityMd).toContain(`c4 20 ${alice.noise_key}`);
    expect(identityMd).toContain(`The encoded Identity, ${alice.identity.length / 2} bytes`);
    expect(identityMd).toContain(`(${alice.verified_data.length / 2} bytes, the vector's \`verified_data\`)`);
    expect(identityMd).toContain(`c4 40 ${alice.signature.slice(0, 8)}…${alice.signature.slice(-6)}`);
    expect(identityMd).toContain(
      `\`${alice.private_identity_key.slice(0, 8)}…${alice.private_identity_key.slice(-8)}\``,
    );
    expect(identityMd).toContain(`cf ${alice.verified_data.slice(20, 36).match(/../g).join(" ")}`);
    expect(identityMd).toContain(`\`${toHex(utf8("loft/sremp/identity/v1"))} 00\``);
  });

  it("quotes the safety code and contact link vectors", () => {
    expect(identityMd).toContain(safety.pairs[0].formatted.slice(0, 17));
    const payload: string = links.links[0].payload;
    expect(identityMd).toContain(
      `is a ${payload.length}-character payload starting \`${payload.slice(0, 28)}…\``,
    );
  });
});

describe("docs/protocol/wire.md examples", () => {
  it("version header", () => {
    const line = block(wireMd, "version_major: 1, version_minor: 0 }\n");
    expect(annotated(line)).toEqual(encodeVersionHeader());
  });

  it("LIST_SERVERS_REQUEST and ERROR", () => {
    const list = block(wireMd, '{ t: "LIST_SERVERS_REQUEST", id: 4 }\n').replace(
      /map, 2 entries|the request id/g,
      "",
    );
    expect(annotated(list)).toEqual(srempCodec.encode({ t: "LIST_SERVERS_REQUEST", id: 4 }));
    const error = block(wireMd, "`errorReply(code, message, id?)` truncates safely.\n\n```\n");
    expect(toHex(annotated(error))).toBe(
      toHex(
        srempCodec.encode({
          t: "ERROR",
          id: 9,
          code: "LOFT_ERR_SCHEMA",
          message: "ttl_seconds: expected a number",
        }),
      ),
    );
  });

  it("chunk and padding examples", () => {
    const chunk = block(wireMd, "chunkMessage(1, de ad be ef 01):\n");
    expect(annotated(chunk)).toEqual(chunkMessage(1, fromHex("deadbeef01"))[0]);
    const pad = toHex(padToBlock(fromHex("010203"), 8))
      .match(/../g)!
      .join(" ");
    expect(wireMd).toContain(`padToBlock(01 02 03, 8)  = ${pad}`);
  });
});
