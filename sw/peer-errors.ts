/**
 * The pages the Service Worker shows when a `/peer/<contact>/…` request cannot be answered
 * (docs/user-guide.md, "Shared folders"): one per reason, in the app's words, styled like the
 * app, readable without the app's scripts (the page has none), with the HTTP status a browser or
 * a script can branch on. Each page says what happened and what the person can do.
 */
import type { PageErrorCode } from "../core/proxy/port.ts";

interface PageText {
  status: number;
  title: string;
  text: string;
}

const PAGES: Record<PageErrorCode, PageText> = {
  no_window: {
    status: 503,
    title: "Open Loft to reach this",
    text: "Pages shared by your contacts travel through your Loft app, end to end encrypted. Open Loft in another tab, then reload this page.",
  },
  not_a_contact: {
    status: 403,
    title: "Not one of your contacts",
    text: "This address belongs to someone who isn't in your contacts, or who doesn't share with you. Add them as a contact first.",
  },
  contact_offline: {
    status: 504,
    title: "Your contact is offline",
    text: "Their Loft isn't reachable right now. Pages they share can only be opened while their Loft is open. Try again later.",
  },
  not_shared: {
    status: 404,
    title: "Nothing shared at this address",
    text: "Your contact doesn't share anything at this address with you. Check the address, or ask them to share the folder with you.",
  },
  too_large: {
    status: 413,
    title: "Request too large",
    text: "What this page tried to send is larger than your contact's Loft accepts in one request. Try something smaller.",
  },
  timeout: {
    status: 504,
    title: "No answer in time",
    text: "Your contact's Loft didn't answer in time. Their connection may be slow; try again.",
  },
  rate_limited: {
    status: 429,
    title: "Too many requests",
    text: "This page asked for too much too fast, and your contact's Loft is slowing it down. Wait a moment, then reload.",
  },
  too_many_requests: {
    status: 429,
    title: "Too many requests at once",
    text: "This page opened more requests at once than your contact's Loft serves. Reload in a moment.",
  },
  origin_error: {
    status: 502,
    title: "The shared service failed",
    text: "Your contact's Loft is reachable, but the service it shares didn't answer properly.",
  },
  protocol_error: {
    status: 502,
    title: "Connection problem",
    text: "The encrypted connection to your contact broke while loading this. Reload to try again.",
  },
  internal: {
    status: 500,
    title: "Something went wrong",
    text: "Your contact's Loft couldn't read what it shares. Try again later.",
  },
  cancelled: {
    status: 499,
    title: "Request cancelled",
    text: "This request was stopped before it finished.",
  },
  no_content_origin: {
    status: 503,
    title: "Shared pages need Loft's content address",
    text: "Loft shows what contacts share on an address of its own (peer. in front of Loft's), so that their pages can never read your Loft. This Loft is reached by an IP address or as localhost, which have none: open Loft by its name.",
  },
  other_contact: {
    status: 403,
    title: "One contact's page can't load another's",
    text: "This page belongs to one contact and tried to load what another contact shares with you. Loft doesn't let one contact's page read another's.",
  },
  bad_request: {
    status: 400,
    title: "Not an address Loft can open",
    text: "Shared pages have addresses like /peer/<contact>/<path>, where the contact is a 64-character id. Check the address.",
  },
};

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

const STYLE = `:root{color-scheme:light dark;--bg:#f7f7f5;--fg:#1d1d1b;--muted:#4a4a46;--card:#fff;--accent:#0b5cad}
@media (prefers-color-scheme:dark){:root{--bg:#161615;--fg:#ecece8;--muted:#c4c4bd;--card:#222220;--accent:#8cc2ff}}
body{margin:0;font:16px/1.5 system-ui,sans-serif;background:var(--bg);color:var(--fg)}
main{max-width:34rem;margin:12vh auto;padding:1.5rem 1.75rem;background:var(--card);border-radius:12px;box-shadow:0 1px 3px #0002}
h1{font-size:1.35rem;margin:0 0 .5rem}p{margin:.5rem 0}.code{color:var(--muted);font-size:.875rem}a{color:var(--accent)}`;

/**
 * The error page for `code` (the reason from the serving side is shown as plain text, escaped);
 * `home` is the app's address (the content origin's own `/` is not Loft).
 */
export function errorPage(code: PageErrorCode, detail?: string, home = "/"): Response {
  const page = PAGES[code];
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(page.title)} · Loft</title><style>${STYLE}</style></head>
<body><main data-loft-error="${code}"><h1>${escapeHtml(page.title)}</h1><p>${escapeHtml(page.text)}</p>
${detail ? `<p class="code">Details: ${escapeHtml(detail.slice(0, 200))}</p>` : ""}<p class="code">Error ${page.status} · ${code.replace(/_/g, " ")}</p>
<p><a href="${escapeHtml(home)}">Open Loft</a></p></main></body></html>`;
  return new Response(html, {
    status: page.status === 499 ? 400 : page.status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      "x-loft-proxy-error": code,
      // Shown on the content origin too: a page that opened it keeps no handle on it.
      "cross-origin-opener-policy": "noopener-allow-popups",
      // No script at all; the inline style is the page's only style.
      "content-security-policy":
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
    },
  });
}
