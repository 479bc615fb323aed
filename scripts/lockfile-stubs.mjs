// Keeps package-lock.json acceptable to `npm ci` when the registry we install from lacks some
// other-platform builds of a package (seen here: @biomejs/cli-darwin-arm64@2.6.8, rollup's
// non-linux-x64 binaries). npm then leaves those optional dependencies out of the lockfile, and
// `npm ci` refuses the lockfile as "not in sync" ("Missing: … from lock file").
//
// For every optional dependency a locked package declares but the lockfile lacks, this adds an
// entry with the declared version and `optional: true`. `npm ci` accepts the lockfile; on this
// platform those packages are never needed, and a failed fetch of an optional dependency is not
// an error. On a registry that has them, npm fetches them as usual. Runs as `postinstall`, so the
// lockfile stays fixed after every `npm install`; idempotent.
import { readFileSync, writeFileSync } from "node:fs";

const file = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(file, "utf8"));
const packages = lock.packages ?? {};
let added = 0;
for (const [path, node] of Object.entries(packages)) {
  for (const [name, spec] of Object.entries(node.optionalDependencies ?? {})) {
    const nested = `${path ? `${path}/` : ""}node_modules/${name}`;
    const top = `node_modules/${name}`;
    if (packages[nested] || packages[top]) continue;
    packages[top] = { version: spec, ...(node.dev ? { dev: true } : {}), optional: true };
    added++;
  }
}
if (added > 0) {
  writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
  console.log(`lockfile-stubs: recorded ${added} optional dependencies this registry does not serve`);
}
