/**
 * The attacker process of the abuse suite (test/abuse/support.ts `floodFromChild`):
 * `node --import tsx flood-child.ts <module path> <export name> <params JSON>` builds the flood
 * the module exports under that name, runs it, and prints its report as the last line.
 */
import { type FloodBuilder, runFlood } from "./support.ts";

const [modulePath, name, params] = process.argv.slice(2);
if (!modulePath || !name || !params) {
  console.error("usage: flood-child.ts <module> <export> <params JSON>");
  process.exit(2);
}
const mod = (await import(modulePath)) as Record<string, FloodBuilder<unknown>>;
const build = mod[name];
if (typeof build !== "function") {
  console.error(`${modulePath} exports no flood named ${name}`);
  process.exit(2);
}
const report = await runFlood(await build(JSON.parse(params)));
console.log(JSON.stringify(report));
process.exit(0);
