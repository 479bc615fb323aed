/**
 * Fixed addresses for host names (`LOFT_RESOLVE="loft.example=127.0.0.1,…"`), like curl's
 * `--resolve`: for a server reached under its public name on a network whose DNS does not know it
 * (split horizon, a test namespace). Names not listed go to the system resolver.
 */
import { type LookupAddress, type LookupOptions, lookup as systemLookup } from "node:dns";
import { isIP } from "node:net";

export type Lookup = (
  hostname: string,
  options: LookupOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
) => void;

/** Parses `name=address,…`; throws on anything else. */
export function parseResolve(spec: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const part of spec
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [name, address, extra] = part.split("=");
    if (!name || !address || extra !== undefined || isIP(address) === 0)
      throw new TypeError(`LOFT_RESOLVE: "${part}" is not name=IP address`);
    map.set(name.toLowerCase(), address);
  }
  return map;
}

/** A `lookup` for http/ws that answers the fixed names and asks the system for the rest. */
export function fixedLookup(fixed: ReadonlyMap<string, string>): Lookup {
  return (hostname, options, callback) => {
    const address = fixed.get(hostname.toLowerCase());
    if (!address) {
      systemLookup(hostname, { ...options, all: true }, (err, addresses) => {
        if (err) callback(err, []);
        else if (options.all) callback(null, addresses);
        else callback(null, addresses[0]?.address ?? "", addresses[0]?.family);
      });
      return;
    }
    const family = isIP(address);
    if (options.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };
}
