import type { LocalCluster } from '../cluster/launcher.js';

/** The `/metrics` URLs of every replica of `service` in a running local cluster. */
export function metricsUrls(cluster: LocalCluster, service: string): string[] {
  return cluster
    .endpoints()
    .filter((e) => e.service === service)
    .map((e) => `http://127.0.0.1:${e.metricsPort}/metrics`);
}

/** The sum of a Prometheus metric's samples at `url` whose labels include `labels`. */
export async function metricValue(
  url: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(url)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      sum += Number(line.split(' ').pop());
  }
  return sum;
}

/** {@link metricValue} summed over every replica of `service`. */
export async function clusterMetric(
  cluster: LocalCluster,
  service: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  let sum = 0;
  for (const u of metricsUrls(cluster, service)) sum += await metricValue(u, name, labels);
  return sum;
}
