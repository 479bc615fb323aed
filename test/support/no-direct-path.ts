/**
 * An init script for browser tests that makes the direct path impossible and only it: every
 * remote ICE candidate is dropped (trickled ones and any in the SDP), so no connectivity check is
 * ever sent and no data channel opens, while WebSockets (signaling, relay) work as usual. The
 * engine then runs its session over a RelayLink (test/e2e/relay-fallback.e2e.ts, proxy.e2e.ts).
 */
export const NO_DIRECT_PATH = `(() => {
  const proto = window.RTCPeerConnection && window.RTCPeerConnection.prototype;
  if (!proto) return;
  proto.addIceCandidate = function () { return Promise.resolve(); };
  const setRemote = proto.setRemoteDescription;
  proto.setRemoteDescription = function (desc, ...rest) {
    if (desc && typeof desc.sdp === "string")
      desc = { type: desc.type, sdp: desc.sdp.split("\\r\\n").filter((l) => !l.startsWith("a=candidate")).join("\\r\\n") };
    return setRemote.call(this, desc, ...rest);
  };
})();`;
