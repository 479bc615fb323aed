// Bench only (bench/relay.ts `--tail`), loaded into the relay process with `--require`: each of
// its main thread's GC pauses appended to $LOFT_BENCH_GC_LOG as `start-ms duration-ms kind`
// (start on the wall clock, performance.timeOrigin-based, as the bench's own timestamps; kind as
// perf_hooks' NODE_PERFORMANCE_GC_*: 1 scavenge, 2 minor mark, 4 mark-compact, 8 incremental
// marking, 16 weak callbacks), so the bench can tell which of its slowest messages waited on one.
const path = process.env.LOFT_BENCH_GC_LOG;
const { isMainThread } = require("node:worker_threads");
if (path && isMainThread) {
  const { PerformanceObserver, performance } = require("node:perf_hooks");
  const { appendFileSync } = require("node:fs");
  let lines = "";
  new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      lines += `${performance.timeOrigin + e.startTime} ${e.duration} ${e.detail.kind}\n`;
  }).observe({ entryTypes: ["gc"] });
  const flush = () => {
    if (!lines) return;
    appendFileSync(path, lines);
    lines = "";
  };
  setInterval(flush, 50).unref();
  process.on("exit", flush);
}
