/**
 * Where browsers report Content-Security-Policy violations (`report-to` / `report-uri`, both
 * pointing at `POST /csp-report`): each report is counted by its directive in
 * `loft_host_csp_reports_total` and dropped — nothing of it is logged or stored (a report names
 * the page's URL, and pages carry contact links). A rising count after a deploy means the app and
 * its policy disagree, or `--csp-connect-src` leaves out a server users need. Anyone can post
 * here, so the figures are a hint, not proof; the body is capped, the label set is fixed.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Counter, type Registry } from "prom-client";

export const CSP_REPORT_PATH = "/csp-report";
/** The `Reporting-Endpoints` group name the policy's `report-to` uses. */
export const CSP_REPORT_GROUP = "csp";
/** A report is a few hundred bytes; a batch of Reporting API reports a few KiB. */
const MAX_REPORT_BYTES = 16 * 1024;

/** Directive labels kept as they are; anything else is counted as "other". */
const DIRECTIVES = new Set([
  "default-src",
  "script-src",
  "script-src-elem",
  "script-src-attr",
  "style-src",
  "style-src-elem",
  "style-src-attr",
  "img-src",
  "font-src",
  "connect-src",
  "manifest-src",
  "worker-src",
  "frame-src",
  "child-src",
  "media-src",
  "object-src",
  "base-uri",
  "form-action",
  "frame-ancestors",
  "trusted-types",
  "require-trusted-types-for",
]);

/** The directives named in a report body of either format (`application/csp-report`, Reporting API). */
export function reportedDirectives(body: unknown): string[] {
  const one = (r: unknown): string | undefined => {
    if (typeof r !== "object" || r === null) return undefined;
    const o = r as Record<string, unknown>;
    const d = o["effective-directive"] ?? o["violated-directive"] ?? o.effectiveDirective;
    if (typeof d !== "string") return undefined;
    const name = d.trim().split(/\s+/)[0]?.toLowerCase() ?? "";
    return DIRECTIVES.has(name) ? name : "other";
  };
  const list: unknown[] = Array.isArray(body) ? body.slice(0, 100) : [body];
  const out: string[] = [];
  for (const item of list) {
    if (typeof item !== "object" || item === null) continue;
    const o = item as Record<string, unknown>;
    // report-uri: {"csp-report": {...}}; Reporting API: [{"type":"csp-violation","body":{...}}]
    const d = one(o["csp-report"]) ?? (o.type === "csp-violation" ? one(o.body) : undefined);
    if (d) out.push(d);
  }
  return out;
}

export interface CspReports {
  /** Answers `POST /csp-report` when `req` is one; false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse, pathname: string): boolean;
}

export function cspReports(registry: Registry): CspReports {
  const counter = new Counter({
    name: "loft_host_csp_reports_total",
    help: "Content-Security-Policy violation reports received, by directive (anyone can post: a hint)",
    labelNames: ["directive"],
    registers: [registry],
  });
  return {
    handle(req, res, pathname) {
      if (pathname !== CSP_REPORT_PATH || req.method !== "POST") return false;
      const declared = Number(req.headers["content-length"] ?? 0);
      if (declared > MAX_REPORT_BYTES) {
        res.writeHead(413, { connection: "close" }).end();
        req.resume();
        return true;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_REPORT_BYTES) {
          if (!res.headersSent) res.writeHead(413, { connection: "close" }).end();
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on("end", () => {
        if (res.headersSent) return;
        try {
          for (const d of reportedDirectives(JSON.parse(Buffer.concat(chunks).toString("utf8"))))
            counter.inc({ directive: d });
        } catch {
          // not JSON: nothing to count
        }
        res.writeHead(204).end();
      });
      req.on("error", () => res.destroy());
      return true;
    },
  };
}
