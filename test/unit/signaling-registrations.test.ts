/** The measurement bench/chat.ts imports: it really registers n peers on a separate process. */
import { describe, expect, it } from "vitest";
import { measureRegistrations } from "../../bench/signaling-registrations.ts";

describe("measureRegistrations", () => {
  it("registers n peers on a signaling process and reports its RSS per peer", async () => {
    const m = await measureRegistrations(60);
    expect(m.peers).toBe(60);
    expect(Number.isFinite(m.rss_per_peer_kib)).toBe(true);
  });

  it("refuses a nonsensical n", async () => {
    await expect(measureRegistrations(0)).rejects.toThrow(RangeError);
  });
});
