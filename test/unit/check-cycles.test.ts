/**
 * scripts/check-cycles.mjs (the import-cycle step of `npm test`, issue #9) run on small trees:
 * it must pass a tree without cycles, and fail — naming the cycle — on any module cycle (there is
 * no allowlist: the engine's step ring is gone), and on a folder (layer) cycle that no single
 * module cycle shows.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const SCRIPT = join(import.meta.dirname, "../../scripts/check-cycles.mjs");
const ENGINE_STEPS = ["dialing", "session", "messages", "relay-mailbox", "first-contact", "presence"];

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

/** The six engine step modules importing each other in a ring, as they did before issue #9. */
function engineRing(): Record<string, string> {
  const files: Record<string, string> = {};
  ENGINE_STEPS.forEach((name, i) => {
    const next = ENGINE_STEPS[(i + 1) % ENGINE_STEPS.length];
    files[`web/src/engine/${name}.ts`] = `import { x } from "./${next}.ts";\nexport const y = x;\n`;
  });
  return files;
}

/** The engine as it is: a controller importing the steps, each step importing only a shared part. */
function engineTree(): Record<string, string> {
  const files: Record<string, string> = {
    "web/src/engine/context.ts": "export const x = 1;\n",
    "web/src/engine/link/controller.ts": ENGINE_STEPS.map((n) => `import "../${n}.ts";\n`).join(""),
  };
  for (const name of ENGINE_STEPS)
    files[`web/src/engine/${name}.ts`] = 'import { x } from "./context.ts";\nexport const y = x;\n';
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
  it("passes a tree without cycles, and says so", () => {
    const r = check({
      ...engineTree(),
      "core/codec/codec.ts": "export const a = 1;\n",
      "core/identity/identity.ts": 'import { a } from "../codec/codec.ts";\nexport const b = a;\n',
    });
    expect(r.err).toBe("");
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/0 module cycle/);
    expect(r.out).toMatch(/0 layer cycle/);
  });

  it("fails on the engine's old step ring: no cycle is allowed any more", () => {
    const r = check(engineRing());
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/import cycle among 6 modules/);
  });

  it("fails on a new module cycle and names it, type-only and dynamic imports included", () => {
    const r = check({
      ...engineTree(),
      "relay-ws/service.ts": 'import type { C } from "./connection.ts";\nexport type S = C;\n',
      "relay-ws/connection.ts": 'export type C = 1;\nexport const load = () => import("./service.ts");\n',
    });
    expect(r.status).toBe(1);
    expect(r.err).toContain("relay-ws/connection.ts → relay-ws/service.ts → relay-ws/connection.ts");
  });

  it("ignores imports that are only in comments", () => {
    const r = check({
      ...engineTree(),
      "relay-ws/service.ts": '// import { c } from "./connection.ts";\nexport const s = 1;\n',
      "relay-ws/connection.ts": 'import { s } from "./service.ts";\nexport const c = s;\n',
    });
    expect(r.err).toBe("");
    expect(r.status).toBe(0);
  });

  it("fails on two folders importing each other through different modules (a layer cycle)", () => {
    const r = check({
      ...engineTree(),
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
      ...engineTree(),
      "core/wire/sremp.ts": 'import { i } from "../identity/identity.ts";\nexport const s = i;\n',
      "core/identity/identity.ts": "export const i = 1;\n",
      "core/identity/vectors.test.ts": 'import { s } from "../wire/sremp.ts";\nexport const v = s;\n',
    });
    expect(r.err).toBe("");
    expect(r.status).toBe(0);
  });
});
