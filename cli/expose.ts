/**
 * `loft expose http://127.0.0.1:PORT --to <contact>` (docs/protocol/proxy.md §Serving an HTTP
 * origin): the headless peer answers the chosen contacts' proxy requests (PROXY session frames,
 * 0x20, over their live sessions — through the relay, since a Node peer has no direct path) from
 * a local HTTP service, with host/proxy-origin.ts. Everyone else is refused `not_a_contact` or
 * `not_shared`; each contact has its own request rate limit (a token bucket keyed by contact id,
 * so it outlives sessions); every request, served or refused, is printed for the owner.
 */
import { contactRequestLimit } from "../core/proxy/rate-limit.ts";
import { httpOriginHandler } from "../host/proxy-origin.ts";
import type { ContactRecord } from "../web/src/engine/api.ts";
import { accessLine } from "./output.ts";
import { type HeadlessPeer, PeerError } from "./peer.ts";

/** Start serving; returns what stops it (requests then are refused `not_shared`). */
export function exposeOrigin(
  peer: HeadlessPeer,
  origin: string,
  contacts: ContactRecord[],
  json: boolean,
  print: (line: string) => void = (l) => console.log(l),
): () => void {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw new PeerError(`not an address: ${origin}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new PeerError(`expose takes an http:// or https:// address (got ${origin})`);
  if (url.pathname !== "/" || url.search || url.hash)
    throw new PeerError(`expose takes an origin without a path, like http://127.0.0.1:8080 (got ${origin})`);
  const allowed = new Set(contacts.map((c) => c.id));
  const names = new Map(contacts.map((c) => [c.id, c.username]));
  // Who is a contact now (accepted, not blocked): a contact not named is told "not shared", anyone
  // else "not a contact" — kept current as contacts change while it runs.
  const current = new Set<string>();
  const reread = async () => {
    const all = await peer.storage.listContacts();
    current.clear();
    for (const c of all) if (!c.request && !c.pending && c.trust !== "rejected") current.add(c.id);
  };
  void reread();
  const off = peer.subscribe((e) => {
    if (e.type === "contact-added" || e.type === "contact-changed" || e.type === "contact-updated")
      void reread();
  });
  const handler = httpOriginHandler({
    origin: url.origin,
    contacts: allowed,
    isContact: (id) => current.has(id),
  });
  peer.engine.serveProxy({
    handler,
    limiter: contactRequestLimit(),
    log: (record) => print(accessLine(record, names.get(record.peer), json)),
  });
  return () => {
    off();
    peer.engine.serveProxy(undefined);
  };
}
