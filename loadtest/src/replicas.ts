import { scrape, sumSamples, type PromSample } from './prometheus.js';

/** A replica whose metrics are read: name and scrape URL. */
export interface ReplicaTarget {
  readonly replica: string;
  readonly metricsUrl: string;
}

/** Calls handled by one replica during a run, from its `grpc_server_handled_total`. */
export interface ReplicaShare {
  readonly replica: string;
  /** Handled calls of the method, any status. */
  readonly handled: number;
  /** Handled calls that ended OK. */
  readonly ok: number;
  /** Calls shed with RESOURCE_EXHAUSTED. */
  readonly shed: number;
  /** Share of all handled calls of the method, 0–1. */
  readonly share: number;
}

/** Counter snapshot of one replica (null when it did not answer). */
export type CounterSnapshot = ReadonlyMap<string, PromSample[] | null>;

/** Scrapes every replica once. */
export async function snapshot(targets: readonly ReplicaTarget[]): Promise<CounterSnapshot> {
  const entries = await Promise.all(
    targets.map(async (t) => [t.replica, await scrape(t.metricsUrl)] as const),
  );
  return new Map(entries);
}

/**
 * Per-replica distribution of a method's calls between two snapshots (counters of a replica
 * that restarted in between are taken from zero; a replica missing at the end counts its
 * last-known value, i.e. its share up to the moment it died).
 */
export function distribution(
  before: CounterSnapshot,
  after: CounterSnapshot,
  method: string,
): ReplicaShare[] {
  const names = [...new Set([...before.keys(), ...after.keys()])];
  const rows = names.map((replica) => {
    const b = before.get(replica) ?? null;
    const a = after.get(replica) ?? null;
    const count = (s: PromSample[] | null, code?: string): number =>
      s
        ? sumSamples(s, 'grpc_server_handled_total', {
            grpc_method: method,
            ...(code ? { grpc_code: code } : {}),
          })
        : 0;
    const delta = (code?: string): number => {
      const end = count(a, code);
      const start = count(b, code);
      return a === null ? 0 : end >= start ? end - start : end;
    };
    return { replica, handled: delta(), ok: delta('OK'), shed: delta('RESOURCE_EXHAUSTED') };
  });
  const total = rows.reduce((s, r) => s + r.handled, 0);
  return rows.map((r) => ({ ...r, share: total ? r.handled / total : 0 }));
}

/** One resource sample of a replica. */
export interface ResourcePoint {
  /** Seconds since sampling started. */
  readonly t: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** `curia_embed_inflight_slices` where exported (NaN elsewhere). */
  readonly inflight: number;
}

/**
 * Samples RSS, heap and in-flight work of each replica every `everyMs` from its /metrics
 * (process metrics must be on, the default) until stopped; a replica that stops answering
 * simply gets no points.
 */
export class ResourceSampler {
  private readonly series = new Map<string, ResourcePoint[]>();
  private timer: NodeJS.Timeout | null = null;
  private readonly t0 = performance.now();
  private busy = false;

  constructor(
    private targets: readonly ReplicaTarget[],
    private readonly everyMs = 1_000,
  ) {}

  /** Replaces the replica list (after a replica was added or restarted). */
  setTargets(targets: readonly ReplicaTarget[]): void {
    this.targets = targets;
  }

  start(): this {
    this.timer = setInterval(() => void this.tick(), this.everyMs);
    void this.tick();
    return this;
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const t = (performance.now() - this.t0) / 1000;
      const snaps = await snapshot(this.targets);
      for (const [replica, s] of snaps) {
        if (!s) continue;
        let list = this.series.get(replica);
        if (!list) this.series.set(replica, (list = []));
        const inflight = s.some((x) => x.name === 'curia_embed_inflight_slices')
          ? sumSamples(s, 'curia_embed_inflight_slices')
          : Number.NaN;
        list.push({
          t,
          rssBytes: sumSamples(s, 'process_resident_memory_bytes'),
          heapUsedBytes: sumSamples(s, 'nodejs_heap_size_used_bytes'),
          inflight,
        });
      }
    } finally {
      this.busy = false;
    }
  }

  /** Stops sampling and returns the series per replica. */
  async stop(): Promise<Record<string, ResourcePoint[]>> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.tick();
    return Object.fromEntries(this.series);
  }
}
