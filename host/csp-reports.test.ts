/**
 * CSP violation reports through a real host: both report formats are counted by directive,
 * unknown directives as "other", garbage and non-reports count nothing, an oversized body is
 * refused, and the decoder never throws and never invents a label, for any JSON.
 */
import fc from "fast-check";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../test/support/fuzz.ts";
import { reportedDirectives } from "./csp-reports.ts";
import { createHost, type Host } from "./host.ts";
import { createLogger } from "./log.ts";

let host: Host;
let base: string;
const registry = new Registry();

beforeAll(async () => {
  host = createHost({
    port: 0,
    host: "127.0.0.1",
    staticDir: undefined,
    registry,
    log: createLogger("csp-report-test", "silent"),
    metrics: "off",
  });
  base = `http://127.0.0.1:${await host.listen()}`;
});
afterAll(() => host.close());

async function count(directive: string): Promise<number> {
  const metric = await registry.getSingleMetric("loft_host_csp_reports_total")?.get();
  return metric?.values.find((v) => v.labels.directive === directive)?.value ?? 0;
}

const post = (body: string, type = "application/csp-report") =>
  fetch(`${base}/csp-report`, { method: "POST", headers: { "content-type": type }, body });

describe("CSP reports", () => {
  it("counts both report formats by directive, unknown ones as other", async () => {
    const legacy = {
      "csp-report": {
        "document-uri": "https://loft.example/#contact-link-with-keys",
        "effective-directive": "script-src-elem",
        "violated-directive": "script-src-elem",
        "blocked-uri": "inline",
      },
    };
    const res = await post(JSON.stringify(legacy));
    expect(res.status).toBe(204);
    expect(res.headers.get("content-security-policy")).toBeTruthy();
    expect(await count("script-src-elem")).toBe(1);
    const api = [
      { type: "csp-violation", body: { effectiveDirective: "connect-src", blockedURL: "wss://x" } },
      { type: "deprecation", body: { id: "x" } },
      { type: "csp-violation", body: { effectiveDirective: "made-up-src" } },
    ];
    expect((await post(JSON.stringify(api), "application/reports+json")).status).toBe(204);
    expect(await count("connect-src")).toBe(1);
    expect(await count("other")).toBe(1);
  });

  it("answers garbage with 204 and counts nothing; refuses an oversized body", async () => {
    const before = JSON.stringify(await registry.getSingleMetric("loft_host_csp_reports_total")?.get());
    for (const body of ["", "{", "null", "[1,2,3]", '{"csp-report": 7}', '"x"'])
      expect((await post(body)).status, body).toBe(204);
    expect(JSON.stringify(await registry.getSingleMetric("loft_host_csp_reports_total")?.get())).toBe(before);
    expect((await post("x".repeat(20_000))).status).toBe(413);
    expect((await fetch(`${base}/csp-report`)).status).toBe(404);
    expect((await fetch(`${base}/health`)).status).toBe(200);
  });

  it("never throws and only ever names a known directive or other, for any JSON", () => {
    const known =
      /^(default|script|style|img|font|connect|manifest|worker|frame|child|media|object)-src(-elem|-attr)?$|^(base-uri|form-action|frame-ancestors|trusted-types|require-trusted-types-for|other)$/;
    const report = fc.record({
      "effective-directive": fc.oneof(
        fc.string(),
        fc.constantFrom("script-src", "connect-src ws:", "IMG-SRC"),
      ),
    });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          report.map((r) => ({ "csp-report": r })),
          fc.array(fc.record({ type: fc.constant("csp-violation"), body: fc.oneof(fc.jsonValue(), report) })),
        ),
        (body) => {
          for (const d of reportedDirectives(body)) expect(d).toMatch(known);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});
