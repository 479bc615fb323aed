/** The STUN/TURN servers field of Settings (EngineSettings.iceServers) as text. */
import type { IceServerConfig } from "../engine/api.ts";

/**
 * ICE servers, one per line: `URL [username credential]`, URL `stun:`, `stuns:`, `turn:` or
 * `turns:` (RFC 7064/7065). Returns the configs, or the first bad line.
 */
export function parseIceServers(text: string): { servers: IceServerConfig[] } | { bad: string } {
  const servers: IceServerConfig[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const [urls, username, credential, ...rest] = line.split(/\s+/);
    if (!urls || !/^(stuns?|turns?):[^\s]+$/.test(urls) || rest.length > 0 || (username && !credential))
      return { bad: line };
    if (urls.startsWith("turn") && !username) return { bad: line };
    servers.push({ urls, ...(username ? { username, credential } : {}) });
  }
  return { servers };
}

export function formatIceServers(servers: IceServerConfig[] | undefined): string {
  return (servers ?? [])
    .map((s) =>
      [Array.isArray(s.urls) ? s.urls.join(",") : s.urls, s.username, s.credential].filter(Boolean).join(" "),
    )
    .join("\n");
}
