/**
 * Operator configuration: every option can be given as a flag (`--port 8080` or `--port=8080`)
 * or an environment variable (`PORT=8080`); flags win (docs/design.md, "Operators"). Each server
 * declares its options once, with a default and a parser, and gets a typed config back.
 */

export type OptionSpec<T> = {
  /** Flag name without dashes, e.g. "port". */
  flag: string;
  /** Environment variable, e.g. "PORT". */
  env: string;
  default: T;
  parse: (raw: string) => T;
  help: string;
};

export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Where readConfig found each value of a config it returned, by flag: `--flag` or the environment
 * variable's name (none for a default). A refusal that spans options (signaling/config.ts
 * `checkSignalingConfig`) names the source the operator actually used: a value set in
 * `LOFT_SIGNAL_TTL_MIN` named as `--signal-ttl-min` sent the operator looking for a flag nobody gave.
 */
const sources = new WeakMap<object, ReadonlyMap<string, string>>();

/**
 * The name of the option `spec` as the operator set it in `config` (a readConfig result, or an
 * object given its sources by `keepSources`): `--flag` or the environment variable, else — a
 * default, or a config built by hand — the flag, which is what to set to change it.
 */
export function optionName(config: object, spec: Pick<OptionSpec<unknown>, "flag">): string {
  return sources.get(config)?.get(spec.flag) ?? `--${spec.flag}`;
}

/** `to`, made of values of `from` (a part of it, or renamed keys), names their sources as `from` does. */
export function keepSources<T extends object>(from: object, to: T): T {
  const read = sources.get(from);
  if (read) sources.set(to, read);
  return to;
}

export const int =
  (min: number, max: number) =>
  (raw: string): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new ConfigError(`expected an integer in [${min}, ${max}], got "${raw}"`);
    return n;
  };

export const bool = (raw: string): boolean => {
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`expected a boolean, got "${raw}"`);
};

export const str = (raw: string): string => raw;

export const list = (raw: string): string[] =>
  raw
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);

/** Parse flags from argv (after the script) and env into a typed config. Unknown flags throw. */
export function readConfig<S extends Record<string, OptionSpec<unknown>>>(
  specs: S,
  argv: readonly string[] = process.argv.slice(2),
  env: Record<string, string | undefined> = process.env,
): { [K in keyof S]: S[K]["default"] } {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) throw new ConfigError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf("=");
    if (eq > 0) flags.set(arg.slice(2, eq), arg.slice(eq + 1));
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) flags.set(arg.slice(2), "true");
      else {
        flags.set(arg.slice(2), next);
        i++;
      }
    }
  }
  const known = new Set(Object.values(specs).map((s) => s.flag));
  for (const f of flags.keys()) if (!known.has(f)) throw new ConfigError(`unknown flag --${f}`);
  const out: Record<string, unknown> = {};
  const read = new Map<string, string>();
  for (const [key, spec] of Object.entries(specs)) {
    const raw = flags.get(spec.flag) ?? env[spec.env];
    const source = flags.has(spec.flag) ? `--${spec.flag}` : spec.env;
    if (raw !== undefined) read.set(spec.flag, source);
    try {
      out[key] = raw === undefined ? spec.default : spec.parse(raw);
    } catch (e) {
      throw new ConfigError(`${source}: ${(e as Error).message}`);
    }
  }
  sources.set(out, read);
  return out as { [K in keyof S]: S[K]["default"] };
}

/** One line per option, for `--help`. */
export function describeOptions(specs: Record<string, OptionSpec<unknown>>): string {
  // Options shared by several services (--trust-proxy, --allowed-origins) are listed once.
  const seen = new Set<string>();
  return Object.values(specs)
    .filter((s) => !seen.has(s.flag) && seen.add(s.flag) !== undefined)
    .map(
      (s) => `  --${s.flag.padEnd(22)} ${s.env.padEnd(26)} ${s.help} (default: ${JSON.stringify(s.default)})`,
    )
    .join("\n");
}

/** The same option specs under `prefix` + key, so two services' specs can be read together. */
export function prefixed<S extends Record<string, OptionSpec<unknown>>>(
  prefix: string,
  specs: S,
): { [K in keyof S & string as `${typeof prefix}${K}`]: S[K] } {
  return Object.fromEntries(Object.entries(specs).map(([k, spec]) => [`${prefix}${k}`, spec])) as never;
}

/** The values read under `prefix` (see `prefixed`), with the prefix removed. */
export function unprefixed(prefix: string, config: Record<string, unknown>): Record<string, unknown> {
  return keepSources(
    config,
    Object.fromEntries(
      Object.entries(config)
        .filter(([k]) => k.startsWith(prefix))
        .map(([k, value]) => [k.slice(prefix.length), value]),
    ),
  );
}
