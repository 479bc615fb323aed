/**
 * The STUN/TURN servers a new WebRTC connection uses: the user's own (Settings, EngineSettings
 * .iceServers) followed by those the signaling server pushed with time-limited TURN credentials
 * (ICE_SERVERS, docs/protocol/signaling.md). Pushed credentials are forgotten once expired: the
 * server pushes fresh ones at half their lifetime while we stay registered.
 */
import type { IceServerEntry } from "../../../core/wire/signaling.ts";
import type { EngineSettings, IceServerConfig } from "./api.ts";
import { type EngineContext, setService } from "./context.ts";

/** Whether any server is a TURN server (`turn:`/`turns:`): relay-only needs one. */
export function hasTurnServer(servers: IceServerConfig[]): boolean {
  return servers.some((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]).some((u) => /^turns?:/.test(u)));
}

/** The servers for a connection starting now. */
export function iceServersFor(
  ctx: Pick<EngineContext, "serverIce">,
  settings: Pick<EngineSettings, "iceServers">,
  now = Date.now(),
): IceServerConfig[] {
  const own = settings.iceServers ?? [];
  const pushed = ctx.serverIce && ctx.serverIce.expiresAt > now ? ctx.serverIce.servers : [];
  return [...own, ...pushed];
}

/** An ICE_SERVERS push: keep it for new connections and say whether the server offers TURN. */
export function acceptServerIceServers(
  ctx: Pick<EngineContext, "serverIce" | "service" | "listeners">,
  servers: IceServerEntry[],
  expiresAt: number,
): void {
  const copied = servers.map((s) => ({ ...s, urls: [...s.urls] }));
  ctx.serverIce = { servers: copied, expiresAt };
  setService(ctx, { serverTurn: hasTurnServer(copied) });
}
