/**
 * test/e2e/vitest.config.ts, read as Vitest reads it: every browser test file starts by putting
 * its namespace's network back (test/support/e2e-setup.ts `resetTestNetwork`), which is sound only
 * while no file that changes that network runs at the same time in the same namespace. That holds
 * by the config's shape — checked here, in both of scripts/e2e.mjs's modes (named files in one
 * namespace; the whole suite in two, LOFT_E2E_LANES) — and by Vitest running one group order after
 * the other, never two at once.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

interface Project {
  test: {
    name: string;
    include: string[];
    exclude?: string[];
    maxWorkers?: number;
    sequence?: { groupOrder?: number };
  };
}

async function configWith(lanes: boolean) {
  const before = process.env.LOFT_E2E_LANES;
  if (lanes) process.env.LOFT_E2E_LANES = "1";
  else delete process.env.LOFT_E2E_LANES;
  try {
    vi.resetModules();
    const config = (await import("../e2e/vitest.config.ts")).default as {
      test: { setupFiles: string[]; projects: Project[] };
    };
    const project = (name: string) => config.test.projects.find((p) => p.test.name === name)?.test;
    return { config, project };
  } finally {
    if (before === undefined) delete process.env.LOFT_E2E_LANES;
    else process.env.LOFT_E2E_LANES = before;
  }
}

/** The browser test files that change their namespace's network: they use test/support/test-network.ts. */
const changers = readdirSync(join(ROOT, "test/e2e"))
  .filter((f) => f.endsWith(".e2e.ts"))
  .filter((f) =>
    /from "\.\.\/support\/test-network\.ts"/.test(readFileSync(join(ROOT, "test/e2e", f), "utf8")),
  )
  .map((f) => `test/e2e/${f}`);

describe("browser test lanes (test/e2e/vitest.config.ts)", () => {
  afterEach(() => vi.resetModules());

  it.each([false, true])(
    "lanes %s: a file that changes the network runs alone, never beside another file of its namespace",
    async (lanes) => {
      expect(changers.length).toBeGreaterThan(0);
      const { config, project } = await configWith(lanes);
      // Every file of every project starts from the namespace's network.
      expect(config.test.setupFiles).toContain("./test/support/e2e-setup.ts");
      const shared = project("shared-network");
      const changing = project("changes-network");
      if (!shared || !changing) throw new Error("a project is missing");
      for (const f of changers) {
        expect(changing.include).toContain(f);
        expect(shared.exclude).toContain(f);
      }
      // One at a time, in a group of its own: Vitest runs group orders one after the other.
      expect(changing.maxWorkers).toBe(1);
      const order = (p: Project["test"]) => p.sequence?.groupOrder ?? 0;
      expect(order(changing)).toBeGreaterThan(order(shared));
      const after = project("shared-after-changes");
      if (lanes) {
        if (!after) throw new Error("shared-after-changes is missing");
        expect(after.maxWorkers).toBe(1);
        expect(order(after)).toBeGreaterThan(order(changing));
        for (const f of after.include) expect(shared.exclude).toContain(f);
      } else expect(after).toBeUndefined();
    },
  );
});
