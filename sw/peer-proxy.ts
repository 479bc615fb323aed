/**
 * The E2EE fetch proxy for `/peer/<contact>/...` (docs/design.md, "Layers":
 * `sw/`, "the `/peer/…` proxy entry"): the page's requests to a peer's HTTP service are encrypted in the
 * Service Worker and carried over the peer link. NOT IMPLEMENTED YET — a later issue. Until then
 * every such request gets a 501 that says so, instead of falling through to the network.
 */
export async function handlePeerRequest(request: Request): Promise<Response> {
  const path = new URL(request.url).pathname;
  return new Response(
    `501 Not Implemented: the end-to-end encrypted peer proxy (${path}) is not available in this version of Loft.\n`,
    {
      status: 501,
      statusText: "Not Implemented",
      headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
    },
  );
}
