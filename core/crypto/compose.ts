/**
 * Build a provider from a backend's native primitives, primitive by primitive: each one is
 * checked against noble on known answers (self-test.ts) and kept only if it agrees; every
 * primitive the backend lacks or fails falls back to noble. `backends` then says which
 * implementation serves what (for /health and the benchmarks).
 */
import { nobleCrypto } from "./noble.ts";
import { type CryptoProvider, PRIMITIVES, type Primitive } from "./provider.ts";
import { agreesWithNoble } from "./self-test.ts";

type Parts = Omit<CryptoProvider, "name" | "backends" | "randomBytes">;

/** What a backend implements natively; `random` is `randomBytes`, the rest keep their names. */
export type NativeParts = Partial<Parts & { random: CryptoProvider["randomBytes"] }>;

function withPart(base: CryptoProvider, primitive: Primitive, part: unknown): CryptoProvider {
  return primitive === "random"
    ? { ...base, randomBytes: part as CryptoProvider["randomBytes"] }
    : ({ ...base, [primitive]: part } as CryptoProvider);
}

/**
 * A provider named `name` whose primitives come from `native` where they pass the known-answer
 * check, and from noble otherwise. `label` names the native implementation in `backends`.
 */
export async function composeProvider(
  name: string,
  label: string,
  native: NativeParts,
): Promise<CryptoProvider> {
  let provider: CryptoProvider = nobleCrypto;
  const backends = { ...nobleCrypto.backends } as Record<Primitive, string>;
  const results = await Promise.all(
    PRIMITIVES.map(async (primitive) => {
      const part = native[primitive];
      if (part === undefined) return false;
      return agreesWithNoble(primitive, withPart(nobleCrypto, primitive, part));
    }),
  );
  PRIMITIVES.forEach((primitive, i) => {
    if (!results[i]) return;
    provider = withPart(provider, primitive, native[primitive]);
    backends[primitive] = label;
  });
  return Object.freeze({ ...provider, name, backends: Object.freeze(backends) });
}

/** One line for logs and /health: `x25519=node ed25519=node … mlkem768=noble`. */
export function describeBackends(provider: CryptoProvider): string {
  return PRIMITIVES.map((p) => `${p}=${provider.backends[p]}`).join(" ");
}
