/**
 * REGISTER `audience` (docs/protocol/signaling.md, "Audience"): the URL of the signaling service
 * the client meant to talk to, inside the signed bytes. The operator lists the service's public
 * URLs (`--signal-audience`); without a list, the server accepts the URL the client reached it
 * by — `ws://` or `wss://` (or http(s), same thing to a proxy), the request's Host, path
 * `/signal`. The Host header is the client's to choose, so this default names the deployment
 * for honest clients; what makes a captured REGISTER useless elsewhere is the per-connection
 * CHALLENGE it signs. A configured list is the stronger form: a request signed for another
 * deployment never matches it.
 */

const SCHEMES = new Set(["ws:", "wss:", "http:", "https:"]);
export const SIGNAL_PATH = "/signal";

function parse(url: string): URL | undefined {
  try {
    const u = new URL(url);
    return SCHEMES.has(u.protocol) && u.search === "" && u.hash === "" && u.username === "" ? u : undefined;
  } catch {
    return undefined;
  }
}

/** `scheme://host:port/path` with default ports dropped and the scheme's security kept apart. */
function normalized(u: URL): string {
  const secure = u.protocol === "wss:" || u.protocol === "https:";
  return `${secure ? "s" : ""}|${u.host}|${u.pathname.replace(/\/+$/, "")}`;
}

/** Whether `audience` names this service, reached with `host` (the request's Host header). */
export function audienceAccepted(
  audience: string | undefined,
  host: string | undefined,
  configured: readonly string[],
): boolean {
  if (audience === undefined) return false;
  const u = parse(audience);
  if (!u) return false;
  if (configured.length > 0) {
    const want = normalized(u);
    return configured.some((c) => {
      const cu = parse(c);
      return cu !== undefined && normalized(cu) === want;
    });
  }
  if (host === undefined || u.pathname.replace(/\/+$/, "") !== SIGNAL_PATH) return false;
  // The Host header parsed under the audience's own scheme, so default ports compare equal.
  const reached = parse(`${u.protocol}//${host}${SIGNAL_PATH}`);
  return reached !== undefined && reached.host === u.host;
}
