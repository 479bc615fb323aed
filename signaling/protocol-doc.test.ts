/**
 * Keeps docs/protocol/signaling.md honest: the worked envelope example is recomputed from the
 * fixed seeds and must appear in the document byte for byte; the documented codes and limits
 * are the ones the code uses.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { toHex } from "../core/bytes.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import { createUserIdentity } from "../core/identity/identity.ts";
import { signedBytes } from "../core/identity/signature.ts";
import {
  CLOSE,
  envelopeSignedPayload,
  SIGNALING,
  SIGNALING_ERROR_CODES,
  signEnvelope,
  verifyEnvelope,
} from "../core/wire/signaling.ts";
import { defaultSignalingConfig, signalingOptions } from "./config.ts";

const doc = readFileSync(new URL("../docs/protocol/signaling.md", import.meta.url), "utf8");
const flat = doc.replace(/\s+/g, "");

describe("docs/protocol/signaling.md", () => {
  it("shows the worked envelope example exactly", async () => {
    const alice = createUserIdentity({
      username: "alice",
      now: 1_700_000_000_000,
      seed: new Uint8Array(32).fill(1),
    });
    const bob = createUserIdentity({
      username: "bob",
      now: 1_700_000_000_000,
      seed: new Uint8Array(32).fill(2),
    });
    const fields = {
      from: alice.identity.verified.identity_key as Uint8Array<ArrayBuffer>,
      to: bob.identity.verified.identity_key as Uint8Array<ArrayBuffer>,
      kind: "offer" as const,
      payload: new TextEncoder().encode("v=0") as Uint8Array<ArrayBuffer>,
      timestamp: 1_700_000_000_000,
      nonce: Uint8Array.from({ length: 16 }, (_, i) => i) as Uint8Array<ArrayBuffer>,
    };
    const signed = signedBytes(SIGNALING.ENVELOPE_CONTEXT, envelopeSignedPayload(fields));
    expect(signed.length).toBe(168);
    expect(doc).toContain(`from = ${toHex(fields.from)}`);
    expect(doc).toContain(`to   = ${toHex(fields.to)}`);
    const e = await signEnvelope(nobleCrypto, alice.privateIdentityKey, fields);
    expect((await verifyEnvelope(nobleCrypto, e)).ok).toBe(true);
    expect(flat).toContain(`signature=${toHex(e.signature)}`);
    // The annotated dump, with its comments and the elided key bytes removed, is the signed bytes.
    const dump = doc.slice(doc.indexOf("signed bytes (168):"), doc.indexOf("signature = "));
    const hex = dump
      .split("\n")
      .slice(1)
      .map((line) => line.replace(/\s{2,}"[^\n]*$|\s{2,}map of 6$/, "").replace(/\s+/g, ""))
      .join("")
      .replace("fba26fd2…c048e5a5", toHex(fields.from))
      .replace("9a4baa4b…1989e40c", toHex(fields.to));
    expect(hex).toBe(toHex(signed));
  });

  it("lists every error code and close code the code uses", () => {
    // Table cells may be padded by the Markdown formatter.
    for (const code of SIGNALING_ERROR_CODES) expect(doc).toMatch(new RegExp(`\\| \`${code}\` +\\|`));
    for (const code of Object.values(CLOSE)) expect(doc).toMatch(new RegExp(`\\| ${code} +\\|`));
  });

  it("states the default limits", () => {
    const c = defaultSignalingConfig();
    expect(doc).toContain(`±${c.clockSkewSeconds} s`);
    expect(doc).toContain(`${c.ttlMinSeconds}..${c.ttlMaxSeconds} s`);
    expect(doc).toContain(`${c.connRate}/s per connection (burst ${c.connBurst})`);
  });

  it("docs/operations-signaling.md documents every option", () => {
    const ops = readFileSync(new URL("../docs/operations-signaling.md", import.meta.url), "utf8");
    for (const o of Object.values(signalingOptions)) expect(ops).toContain(`--${o.flag}\``);
  });
});

describe("mounting in a bigger process", () => {
  it("signalingConfigFrom picks the signaling options out of a merged config", async () => {
    const { readConfig, int } = await import("../host/config.ts");
    const { signalingConfigFrom } = await import("./config.ts");
    const merged = readConfig(
      {
        port: { flag: "port", env: "PORT", default: 8080, parse: int(0, 65535), help: "" },
        ...signalingOptions,
      },
      ["--port", "9", "--signal-ttl-max", "600"],
      { LOFT_SIGNAL_LIST_ALL: "yes" },
    );
    const c = signalingConfigFrom(merged);
    expect(c.ttlMaxSeconds).toBe(600);
    expect(c.listAll).toBe(true);
    expect("port" in c).toBe(false);
    expect(() => signalingConfigFrom({ ...merged, ttlMinSeconds: 700 })).toThrow(/ttl-min/);
  });
});
