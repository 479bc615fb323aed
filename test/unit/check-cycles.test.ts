/**
 * scripts/check-cycles.mjs (the import-cycle step of `npm test`, issue #9) run on small trees:
 * it must pass a tree whose only cycle is the allowlisted engine one, and fail — naming the
 * cycle — on a new module cycle, a grown or vanished allowlisted cycle, and a folder (layer)
 * cycle that no single module cycle shows.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const SCRIPT = join(import.meta.dirname, "../../scripts/check-cycles.mjs");
const ENGINE_CYCLE = ["dialing", "session", "messages", "relay-mailbox", "first-contact", "presence"];

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

/** The six engine step modules importing each other in a ring, as they do today. */
function engineRing(): Record<string, string> {
  const files: Record<string, string> = {};
  ENGINE_CYCLE.forEach((name, i) => {
    const next = ENGINE_CYCLE[(i + 1) % ENGINE_CYCLE.length];
    files[`web/src/engine/${name}.ts`] = `import { x } from "./${next}.ts";\nexport const y = x;\n`;
  });
  return files;
}

function check(files: Record<string, string>): { status: number | null; out: string; err: string } {
  const root = mkdtempSync(join(tmpdir(), "loft-cycles-"));
  roots.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  const r = spawnSync(process.execPath, [SCRIPT, "--root", root], { encoding: "utf8", timeout: 60_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

describe("scripts/check-cycles.mjs", () => {
  it("passes a tree whose only cycle is the allowlisted engine one, and reports it", () => {
    const r = check({
      ...engineRing(),
      "core/codec/codec.ts": "export const a = 1;\n",
      "core/identity/identity.ts": 'import { a } from "../codec/codec.ts";\nexport const b = a;\n',
    });
    expect(r.err).toBe("");
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/allowed cycle \(chat engine/);
    expect(r.out).toMatch(/0 layer cycle/);
  });

  it("fails on a new module cycle and names it, type-only and dynamic imports included", () => {
    const r = check({
      ...engineRing(),
      "relay-ws/service.ts": 'import type { C } from "./connection.ts";\nexport type S = C;\n',
      "relay-ws/connection.ts": 'export type C = 1;\nexport const load = () => import("./service.ts");\n',
    });
    expect(r.status).toBe(1);
    expect(r.err).toContain("relay-ws/connection.ts → relay-ws/service.ts → relay-ws/connection.ts");
  });

  it("ignores imports that are only in comments", () => {
    const r = check({
      ...engineRing(),
      "relay-ws/service.ts": '// import { c } from "./connection.ts";\nexport const s = 1;\n',
      "relay-ws/connection.ts": 'import { s } from "./service.ts";\nexport const c = s;\n',
    });
    expect(r.err).toBe("");
    expect(r.status).toBe(0);
  });

  it("fails when the allowlisted cycle grows, naming the newcomer", () => {
    const files = engineRing();
    files["web/src/engine/presence.ts"] = 'import { x } from "./dialing.ts";\nimport "./timers.ts";\n';
    files["web/src/engine/timers.ts"] = 'import { y } from "./presence.ts";\nexport const t = y;\n';
    const r = check(files);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/grew by: web\/src\/engine\/timers\.ts/);
  });

  it("fails when the allowlisted cycle is gone, so the allowlist is tightened", () => {
    const files = engineRing();
    files["web/src/engine/presence.ts"] = "export const x = 1;\n"; // the ring is broken
    const r = check(files);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/allowlisted cycle is gone/);
  });

  it("fails on two folders importing each other through different modules (a layer cycle)", () => {
    const r = check({
      ...engineRing(),
      "core/identity/contact-link.ts": 'import { a } from "../wire/codec.ts";\nexport const l = a;\n',
      "core/wire/codec.ts": "export const a = 1;\n",
      "core/wire/signed.ts": 'import { s } from "../identity/signature.ts";\nexport const t = s;\n',
      "core/identity/signature.ts": "export const s = 1;\n",
    });
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/layer cycle among 2 folders: core\/identity → core\/wire → core\/identity/);
    expect(r.err).toContain("core/identity/contact-link.ts → core/wire/codec.ts");
    expect(r.err).toContain("core/wire/signed.ts → core/identity/signature.ts");
  });

  it("lets test code reach across layers without making a layer cycle", () => {
    const r = check({
      ...engineRing(),
      "core/wire/sremp.ts": 'import { i } from "../identity/identity.ts";\nexport const s = i;\n',
      "core/identity/identity.ts": "export const i = 1;\n",
      "core/identity/vectors.test.ts": 'import { s } from "../wire/sremp.ts";\nexport const v = s;\n',
    });
    expect(r.err).toBe("");
    expect(r.status).toBe(0);
  });
});
