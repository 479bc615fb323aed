/**
 * Where a bench page spends its CPU: the V8 CPU profiler through the Chrome DevTools Protocol
 * (`Profiler`), summed as self time per function (bench:files `LOFT_BENCH_PROFILE=1`).
 */
import type { Page } from "playwright-core";

export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples?: number[];
}

/**
 * The `top` functions with the most samples (self time), as % of the non-idle samples — or, with
 * `ofAll`, of all the samples (a share of the page's wall time, idle included).
 */
export function topSelf(
  profile: CpuProfile,
  top = 10,
  { ofAll = false } = {},
): { fn: string; pct: number }[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const counts = new Map<string, number>();
  let busy = 0;
  for (const id of profile.samples ?? []) {
    const f = byId.get(id);
    if (ofAll) busy++;
    if (!f || f.functionName === "(idle)" || f.functionName === "(program)") continue;
    if (!ofAll) busy++;
    const file = f.url.split("/").pop()?.split("?")[0] ?? "";
    const key = `${f.functionName || "(anonymous)"} ${file}:${f.lineNumber + 1}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts]
    .sort((x, y) => y[1] - x[1])
    .slice(0, top)
    .map(([fn, n]) => ({ fn, pct: Math.round((1000 * n) / Math.max(1, busy)) / 10 }));
}

/**
 * Start the page's CPU profiler (`intervalUs` sampling); the returned function stops it and gives
 * its `top` functions by self time, as % of all the samples (`topSelf` `ofAll`).
 */
export async function startProfile(
  page: Page,
  { intervalUs = 500, top = 25 } = {},
): Promise<() => Promise<{ fn: string; pct: number }[]>> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: intervalUs });
  await cdp.send("Profiler.start");
  return async () => {
    const { profile } = await cdp.send("Profiler.stop");
    await cdp.detach();
    return topSelf(profile, top, { ofAll: true });
  };
}
