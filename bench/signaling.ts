/**
 * `npm run bench:signaling [-- --json] [--quick]`
 *
 * What one REGISTER costs the signaling server to verify (signaling/register-check.ts), next to
 * the pure-JS path it replaced (core `decodeIdentity` + `verifyWithContext` on the noble provider) in
 * the same process, as ratios — for a first-seen identity, a renewal (identity cached), and a
 * forged identity (refused at the first native verification). docs/decisions.md, "Native
 * verification, per-source CPU budgets, no worker thread".
 */

import { nobleCrypto } from "../core/crypto/noble.ts";
import { decodeIdentity } from "../core/identity/identity.ts";
import { SIGNATURE_CONTEXTS, verifyWithContext } from "../core/identity/signature.ts";
import { requestSignedPayload, signRegisterRequest } from "../core/wire/signed.ts";
import { checkIdentityNative, IdentityCache, registerSignatureValid } from "../signaling/register-check.ts";
import { makeUser } from "../signaling/testing.ts";

const argv = process.argv.slice(2);
const JSON_OUT = argv.includes("--json");
const QUICK = argv.includes("--quick");
const say = (s: string) => (JSON_OUT ? process.stderr.write(`${s}\n`) : console.log(s));

/**
 * Mean µs per call over `n` calls after a warm-up, best of three rounds. Every call is awaited
 * (the core path is async, the native one is not): one microtask each, the same for both.
 */
async function time(n: number, f: (i: number) => unknown): Promise<number> {
  for (let i = 0; i < Math.min(50, n); i++) await f(i);
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await f(i);
    best = Math.min(best, ((performance.now() - t0) / n) * 1000);
  }
  return Math.round(best * 10) / 10;
}

const N = QUICK ? 50 : 400;
const users = Array.from({ length: 8 }, (_, i) => makeUser(`bench${i}`));
const requests = await Promise.all(
  users.map((u) =>
    signRegisterRequest(nobleCrypto, u, {
      ttl_seconds: 60,
      timestamp: Date.now(),
      nonce: new Uint8Array(16),
      audience: "wss://x/signal",
    }),
  ),
);
const forged = requests.map((r) => {
  const identity = r.identity.slice();
  identity[20]! ^= 0x55;
  return { ...r, identity };
});

const noble = async (r: (typeof requests)[number]) => {
  const id = await decodeIdentity(nobleCrypto, r.identity);
  return (
    id.ok &&
    (await verifyWithContext(
      nobleCrypto,
      id.value.verified.identity_key,
      SIGNATURE_CONTEXTS.registerRequest,
      requestSignedPayload(r as Record<string, unknown>, "signature"),
      r.signature,
    ))
  );
};
const native = (r: (typeof requests)[number]) => {
  const id = checkIdentityNative(r.identity);
  return id.ok && registerSignatureValid(id.value, r);
};
const cache = new IdentityCache(64);
for (const r of requests) cache.check(r.identity);
const renewal = (r: (typeof requests)[number]) => {
  const id = cache.check(r.identity);
  return id.ok && registerSignatureValid(id.value, r);
};
for (const r of requests)
  if (!(await noble(r)) || !native(r) || !renewal(r)) throw new Error("bench input does not verify");

const pick =
  <T>(list: T[]) =>
  (i: number) =>
    list[i % list.length]!;
const figures = {
  noble_new_identity_us: await time(N, (i) => noble(pick(requests)(i))),
  native_new_identity_us: await time(N, (i) => native(pick(requests)(i))),
  native_renewal_us: await time(N, (i) => renewal(pick(requests)(i))),
  noble_forged_identity_us: await time(N, (i) => noble(pick(forged)(i))),
  native_forged_identity_us: await time(N, (i) => native(pick(forged)(i))),
};
const ratios = {
  new_identity_speedup:
    Math.round((figures.noble_new_identity_us / figures.native_new_identity_us) * 10) / 10,
  renewal_speedup: Math.round((figures.noble_new_identity_us / figures.native_renewal_us) * 10) / 10,
  forged_speedup:
    Math.round((figures.noble_forged_identity_us / figures.native_forged_identity_us) * 10) / 10,
};
say("REGISTER verification, µs per request (baseline: core decodeIdentity + noble verify, same process)");
say(
  `  new identity   native ${figures.native_new_identity_us}   noble ${figures.noble_new_identity_us}   ×${ratios.new_identity_speedup}`,
);
say(`  renewal        native ${figures.native_renewal_us} (identity cached)   ×${ratios.renewal_speedup}`);
say(
  `  forged identity native ${figures.native_forged_identity_us}   noble ${figures.noble_forged_identity_us}   ×${ratios.forged_speedup}`,
);
if (JSON_OUT) console.log(JSON.stringify({ bench: "signaling", figures, ratios }));
