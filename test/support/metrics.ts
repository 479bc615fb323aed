/**
 * Reading Prometheus text output in tests (the servers' /metrics, host/metrics.ts): one sample's
 * value, from text already fetched or from a metrics listener.
 */

/** Value of one sample in Prometheus text output (0 when absent); `labels` as written inside `{}`. */
export function metricValue(text: string, name: string, labels = ""): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ""} `));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
}

/** One sample from a metrics listener (its base URL; `/metrics` is appended). */
export async function fetchMetric(baseUrl: string, name: string, labels = ""): Promise<number> {
  return metricValue(await (await fetch(`${baseUrl}/metrics`)).text(), name, labels);
}
