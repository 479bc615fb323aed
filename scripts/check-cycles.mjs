// Import-cycle check (issue #9; docs/contributing.md "Layout and imports"). Reads every TypeScript
// module under the source roots, follows its relative imports (static, type-only, re-exports and
// dynamic `import()` alike: a type-only cycle is still a layering cycle), finds the strongly
// connected components (Tarjan) and fails on any, naming a concrete cycle through it. There is
// no allowlist: the last known cycle, the chat engine's step modules, was removed by the
// per-contact link controller (docs/design.md, "The link controller"). Run: `node scripts/check-cycles.mjs` (also a step of `npm test`).
//
// It checks twice: between modules, and between layers — the folders of core/ (core/codec,
// core/identity, …), of web/src/ (engine, net, ui, …) and the top-level services (signaling,
// relay-ws, host, server, sw), each file sitting directly in core/ or web/src/ being its own
// layer. Two folders that import each other are a cycle even when no module cycle closes
// (core/wire → core/identity → core/wire through different files). Test code (tests, test
// helpers, test/, bench/, scripts/) may reach across layers and is left out of the layer graph.
//
// No dependency: our imports are all relative and end in `.ts`/`.tsx` (docs/contributing.md), so
// a small scanner over the source text resolves them exactly; comments and strings that merely
// look like imports are stripped first.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

// `--root <dir>` checks another tree (the tests of this script build small ones).
const rootFlag = process.argv.indexOf("--root");
const root =
  rootFlag > 0 && process.argv[rootFlag + 1]
    ? resolve(process.argv[rootFlag + 1])
    : resolve(dirname(fileURLToPath(import.meta.url)), "..");
const sourceRoots = [
  "core",
  "web",
  "sw",
  "signaling",
  "relay-ws",
  "server",
  "host",
  "test",
  "bench",
  "scripts",
];
const skipDirs = new Set(["node_modules", "dist", ".git"]);

function listSources(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e.isDirectory()) {
      if (!skipDirs.has(e.name)) listSources(join(dir, e.name), out);
    } else if (/\.(ts|tsx|mts)$/.test(e.name) && !e.name.endsWith(".d.ts")) {
      out.push(join(dir, e.name));
    }
  }
  return out;
}

/** Source text with comments blanked, so commented-out imports do not count. */
function stripComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/(^|[^:"'`\\])\/\/[^\n]*/g, "$1");
}

const importPatterns = [
  /\bimport\s+(?:type\s+)?[^'"`;]*?\bfrom\s*["']([^"']+)["']/g, // import x from "…", import type …
  /\bexport\s+(?:type\s+)?[^'"`;]*?\bfrom\s*["']([^"']+)["']/g, // export { x } from "…"
  /\bimport\s*["']([^"']+)["']/g, // import "…" (side effect)
  /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g, // import("…")
];

function importsOf(file) {
  const text = stripComments(readFileSync(file, "utf8"));
  const targets = new Set();
  for (const pattern of importPatterns) {
    for (const m of text.matchAll(pattern)) {
      const spec = m[1];
      if (!spec.startsWith(".")) continue; // packages and node: built-ins
      const target = resolve(dirname(file), spec);
      if (existsFile(target)) targets.add(target);
    }
  }
  return targets;
}

function existsFile(path) {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

const rel = (p) => relative(root, p).split(sep).join("/");

/** Tarjan's strongly connected components, iterative (no recursion limit on deep chains). */
function stronglyConnected(graph) {
  const index = new Map();
  const low = new Map();
  const onStack = new Set();
  const stack = [];
  const components = [];
  let next = 0;
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const work = [[start, [...graph.get(start)][Symbol.iterator]()]];
    index.set(start, next);
    low.set(start, next);
    next++;
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const [node, it] = work[work.length - 1];
      const step = it.next();
      if (!step.done) {
        const to = step.value;
        if (!graph.has(to)) continue;
        if (!index.has(to)) {
          index.set(to, next);
          low.set(to, next);
          next++;
          stack.push(to);
          onStack.add(to);
          work.push([to, [...graph.get(to)][Symbol.iterator]()]);
        } else if (onStack.has(to)) {
          low.set(node, Math.min(low.get(node), index.get(to)));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1][0];
        low.set(parent, Math.min(low.get(parent), low.get(node)));
      }
      if (low.get(node) === index.get(node)) {
        const component = [];
        let member;
        do {
          member = stack.pop();
          onStack.delete(member);
          component.push(member);
        } while (member !== node);
        if (component.length > 1 || graph.get(node).has(node)) components.push(component);
      }
    }
  }
  return components;
}

/** One concrete cycle through `from` inside the component (breadth-first, shortest). */
function cycleThrough(graph, component, from) {
  const inside = new Set(component);
  const previous = new Map([[from, null]]);
  const queue = [from];
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i];
    for (const to of graph.get(node)) {
      if (!inside.has(to)) continue;
      if (to === from) {
        const path = [node];
        for (let p = previous.get(node); p !== null; p = previous.get(p)) path.push(p);
        return [...path.reverse(), from];
      }
      if (!previous.has(to)) {
        previous.set(to, node);
        queue.push(to);
      }
    }
  }
  return [from];
}

/** The layer a module belongs to (see the header), or undefined for test code. */
function layerOf(path) {
  const name = rel(path);
  if (/(^|\/)(test|bench|scripts)\//.test(name) || /(\.test|testing|test-support)\.tsx?$/.test(name)) return;
  const parts = name.split("/");
  const depth = parts[0] === "core" ? 2 : parts[0] === "web" && parts[1] === "src" ? 3 : 1;
  return parts.length > depth ? parts.slice(0, depth).join("/") : name;
}

/** Module edges folded onto layers; each layer edge keeps one module edge as its example. */
function layerGraph(graph) {
  const layers = new Map();
  const example = new Map();
  for (const [from, targets] of graph) {
    const a = layerOf(from);
    if (a === undefined) continue;
    if (!layers.has(a)) layers.set(a, new Set());
    for (const to of targets) {
      const b = layerOf(to);
      if (b === undefined || b === a) continue;
      layers.get(a).add(b);
      if (!layers.has(b)) layers.set(b, new Set());
      if (!example.has(`${a} ${b}`)) example.set(`${a} ${b}`, `${rel(from)} → ${rel(to)}`);
    }
  }
  return { layers, example };
}

const files = sourceRoots.flatMap((d) => listSources(join(root, d), []));
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const components = stronglyConnected(graph)
  .map((c) => c.sort())
  .sort((a, b) => rel(a[0]).localeCompare(rel(b[0])));

let failed = false;
for (const component of components) {
  failed = true;
  const names = component.map(rel);
  const cycle = cycleThrough(graph, component, component[0]).map(rel).join(" → ");
  console.error(`✗ import cycle among ${names.length} modules:\n  ${names.join("\n  ")}`);
  console.error(`  e.g. ${cycle}`);
}

const { layers, example } = layerGraph(graph);
const layerCycles = stronglyConnected(layers).map((c) => c.sort());
for (const component of layerCycles) {
  failed = true;
  const cycle = cycleThrough(layers, component, component[0]);
  console.error(`✗ layer cycle among ${component.length} folders: ${cycle.join(" → ")}`);
  for (let i = 0; i + 1 < cycle.length; i++) console.error(`  ${example.get(`${cycle[i]} ${cycle[i + 1]}`)}`);
}
console.log(
  `${files.length} modules, ${components.length} module cycle(s); ` +
    `${layers.size} layers, ${layerCycles.length} layer cycle(s)`,
);
if (failed) process.exit(1);
