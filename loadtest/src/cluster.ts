import { LocalCluster, type LocalClusterOptions } from '@curia/cli';

import type { ReplicaTarget } from './replicas.js';

/** Options of {@link startCluster}: the launcher's, with quiet output by default. */
export type ClusterOptions = Omit<LocalClusterOptions, 'ports'>;

/** Recent service output kept for failure messages (service logs are otherwise discarded). */
export class OutputTail {
  private readonly lines: string[] = [];

  constructor(private readonly max = 200) {}

  push = (replica: string, line: string): void => {
    this.lines.push(`[${replica}] ${line}`);
    if (this.lines.length > this.max) this.lines.shift();
  };

  text(): string {
    return this.lines.join('\n');
  }
}

/**
 * Starts services on loopback with dynamic ports (`LocalCluster`, after `npm run build`), logs
 * at `warn` into `tail` rather than the terminal.
 */
export function startCluster(options: ClusterOptions, tail = new OutputTail()): Promise<LocalCluster> {
  return LocalCluster.start({
    ports: 'dynamic',
    logLevel: 'warn',
    onOutput: tail.push,
    readyTimeoutMs: 240_000,
    ...options,
  });
}

/** Runs `fn` against a cluster started with {@link startCluster}, stopping it afterwards whatever happens. */
export async function withCluster<T>(
  options: ClusterOptions,
  tail: OutputTail,
  fn: (cluster: LocalCluster) => Promise<T>,
): Promise<T> {
  const cluster = await startCluster(options, tail);
  try {
    return await fn(cluster);
  } finally {
    await cluster.stop();
  }
}

/** Scrape targets of a service's live replicas. */
export function replicaTargets(cluster: LocalCluster, service: string): ReplicaTarget[] {
  return cluster
    .endpoints()
    .filter((e) => e.service === service)
    .map((e) => ({ replica: e.replica, metricsUrl: `http://127.0.0.1:${e.metricsPort}/metrics` }));
}

/** `127.0.0.1:<grpcPort>` of one replica. */
export function replicaAddress(cluster: LocalCluster, replica: string): string {
  const e = cluster.endpoints().find((x) => x.replica === replica);
  if (!e) throw new Error(`no replica '${replica}'`);
  return `127.0.0.1:${e.grpcPort}`;
}
