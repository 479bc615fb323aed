/**
 * `npm run bench:proxy-hmac [-- --json] [--quick]` — what the relay link's command authenticator
 * costs per command (docs/protocol/relay.md §Command authorization: `a = HMAC-SHA256(K, t)`, one
 * per command; the proxy's relay path sends one SEND per 16 KiB piece), with the key imported once
 * into a handle (core/crypto/provider.ts `hmacSha256Key`, what core/relay/client.ts keeps per
 * queue and connection) next to the call that takes the key bytes each time (`hmacSha256`, what
 * the client did before session 15), same provider, same run. Providers: node:crypto (host/
 * crypto-node.ts, `loft expose`), WebCrypto as Node implements it (core/crypto/webcrypto.ts, the
 * browser's code path — Chromium's own costs differ: bench/README.md §bench:proxy), and noble.
 *
 * Transmissions: a SEND carrying one 16 KiB relay piece (16 440 bytes) and a 60-byte ACK. Each
 * subject signs 64 transmissions per call; subjects alternate in slices (bench/harness.ts
 * `alternate`). `keyed_vs_per_call` per provider and size: commands per second with the handle
 * over commands per second per call (above 1: the handle is faster).
 */

import { nobleCrypto } from "../core/crypto/noble.ts";
import { type CryptoProvider, keyedHmacSha256 } from "../core/crypto/provider.ts";
import { createWebCryptoProvider } from "../core/crypto/webcrypto.ts";
import { createNodeCryptoProvider } from "../host/crypto-node.ts";
import { alternate, log, type Row, rateOf, report, sliceRatio, sliceRatioRange } from "./harness.ts";

const BATCH = 64;

async function main(): Promise<void> {
  const providers: [string, CryptoProvider][] = [
    ["node", await createNodeCryptoProvider()],
    ["webcrypto", await createWebCryptoProvider()],
    ["noble", nobleCrypto],
  ];
  const key = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
  const sizes: [string, number][] = [
    ["send_16k", 16_440],
    ["ack", 60],
  ];
  const rows: Row[] = [];
  const summary: Record<string, unknown> = { bench: "proxy-hmac", batch: BATCH };
  for (const [pname, crypto] of providers) {
    const mac = await keyedHmacSha256(crypto, key);
    for (const [sname, size] of sizes) {
      const t = Uint8Array.from({ length: size }, (_, i) => (i * 31) & 0xff);
      // The same answer both ways, or the comparison means nothing.
      const [a, b] = [await mac.sign(t), await crypto.hmacSha256(key, t)];
      if (Buffer.compare(a, b) !== 0) throw new Error(`${pname}: the keyed HMAC differs`);
      log(`${pname}, ${sname}`);
      const rates = await alternate([
        {
          name: "keyed",
          run: async () => {
            for (let i = 0; i < BATCH; i++) await mac.sign(t);
            return BATCH;
          },
        },
        {
          name: "per_call",
          run: async () => {
            for (let i = 0; i < BATCH; i++) await crypto.hmacSha256(key, t);
            return BATCH;
          },
        },
      ]);
      const k = rateOf(rates, "keyed");
      const p = rateOf(rates, "per_call");
      rows.push({
        name: `${pname} (${crypto.backends.hmacSha256}), ${sname}`,
        value: k.perSecond,
        unit: "cmd/s",
        baseline: { name: "per call", value: p.perSecond },
        ratio: sliceRatio(k, p),
        ratioRange: sliceRatioRange(k, p),
      });
      summary[`${pname}_${sname}`] = {
        backend: crypto.backends.hmacSha256,
        keyed_us: 1e6 / k.perSecond,
        per_call_us: 1e6 / p.perSecond,
        keyed_vs_per_call: sliceRatio(k, p),
        keyed_vs_per_call_range: sliceRatioRange(k, p),
      };
    }
  }
  report("bench:proxy-hmac — the relay command authenticator, key imported once vs per call", rows, summary);
}

await main();
