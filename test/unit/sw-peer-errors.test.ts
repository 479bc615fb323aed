/**
 * The Service Worker's proxy error pages (sw/peer-errors.ts): one per reason, each with its HTTP
 * status, no script allowed, and the serving side's words shown escaped (a contact's reason text
 * can never inject markup into the page).
 */
import { describe, expect, it } from "vitest";
import { RESET_CODES } from "../../core/proxy/frames.ts";
import type { PageErrorCode } from "../../core/proxy/port.ts";
import { errorPage } from "../../sw/peer-errors.ts";

const CODES: PageErrorCode[] = [...(Object.keys(RESET_CODES) as PageErrorCode[]), "no_window", "bad_request"];

describe("proxy error pages", () => {
  it("every reason has a page with a status, a title and a script-free CSP", async () => {
    const statuses = new Map<string, number>();
    for (const code of CODES) {
      const res = errorPage(code);
      statuses.set(code, res.status);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.headers.get("x-loft-proxy-error")).toBe(code);
      expect(res.headers.get("content-security-policy")).toMatch(/^default-src 'none'/);
      const html = await res.text();
      expect(html).toMatch(/<html lang="en">/);
      expect(html).toMatch(/<h1>[^<]+<\/h1>/);
      expect(html).not.toMatch(/<script/i);
    }
    expect(statuses.get("not_a_contact")).toBe(403);
    expect(statuses.get("not_shared")).toBe(404);
    expect(statuses.get("too_large")).toBe(413);
    expect(statuses.get("timeout")).toBe(504);
    expect(statuses.get("no_window")).toBe(503);
  });

  it("escapes the detail text", async () => {
    const html = await errorPage("origin_error", `<img src=x onerror=alert(1)>"'&`).text();
    expect(html).not.toContain("<img src=x");
    expect(html).toContain("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;");
  });
});
