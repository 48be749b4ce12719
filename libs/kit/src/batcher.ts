import { CuriaError } from '@curia/errors';

/** Options of {@link DynamicBatcher}. */
export interface BatcherOptions<I, O> {
  /** Largest batch handed to `run`. */
  readonly maxBatchSize: number;
  /** Longest an item waits for companions before a partial batch runs, ms. */
  readonly maxQueueDelayMs: number;
  /** Items allowed to wait; beyond this `submit` sheds with RESOURCE_EXHAUSTED. */
  readonly maxQueueSize: number;
  /** Batches computed at once (1 for a single accelerator stream). */
  readonly concurrency?: number;
  /** Computes a batch; must return one output per input, in order. */
  readonly run: (items: I[], key: string) => Promise<O[]>;
  /** Observes each batch (for metrics). */
  readonly onBatch?: (stats: BatchStats) => void;
}

/** What one batch did. */
export interface BatchStats {
  readonly key: string;
  readonly size: number;
  /** Time each item waited in the queue, ms. */
  readonly queueWaitMs: readonly number[];
  readonly computeMs: number;
  /** Items dropped before computing because their caller had gone. */
  readonly dropped: number;
}

interface Pending<I, O> {
  readonly item: I;
  readonly key: string;
  readonly enqueued: number;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (o: O) => void;
  readonly reject: (e: unknown) => void;
  onAbort?: () => void;
}

/**
 * Dynamic batching across concurrent requests, as inference servers do it: items queue per key
 * (e.g. model), a batch runs as soon as `maxBatchSize` items wait or the oldest has waited
 * `maxQueueDelayMs`. The queue is bounded (overload sheds with RESOURCE_EXHAUSTED and a retry
 * hint rather than queueing forever), and an item whose caller cancels is removed and never
 * computed.
 */
export class DynamicBatcher<I, O> {
  private readonly queues = new Map<string, Pending<I, O>[]>();
  private queued = 0;
  private running = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Moving average of items computed per ms, for retry hints. */
  private throughputPerMs = 0;

  constructor(private readonly options: BatcherOptions<I, O>) {
    if (options.maxBatchSize < 1 || options.maxQueueSize < 1)
      throw new RangeError('batch and queue sizes must be >= 1');
  }

  /** Items waiting (not yet computing). */
  get queueDepth(): number {
    return this.queued;
  }

  /** Batches being computed. */
  get inFlightBatches(): number {
    return this.running;
  }

  /** Queues one item; resolves with its output. Rejects with AbortError if `signal` fires first. */
  submit(item: I, key = '', signal?: AbortSignal): Promise<O> {
    if (this.closed)
      return Promise.reject(new CuriaError('UNAVAILABLE', 'batcher is closed (server shutting down)'));
    if (signal?.aborted) return Promise.reject(abortError());
    if (this.queued >= this.options.maxQueueSize) {
      return Promise.reject(
        new CuriaError(
          'RESOURCE_EXHAUSTED',
          `inference queue is full (${this.queued} items waiting, limit ${this.options.maxQueueSize}); retry later or on another replica`,
          { retryAfterMs: this.retryAfterMs() },
        ),
      );
    }
    return new Promise<O>((resolve, reject) => {
      const p: Pending<I, O> = { item, key, enqueued: performance.now(), signal, resolve, reject };
      if (signal) {
        p.onAbort = () => {
          const q = this.queues.get(key);
          const i = q?.indexOf(p) ?? -1;
          if (q && i >= 0) {
            q.splice(i, 1);
            this.queued--;
            reject(abortError());
          }
        };
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      let q = this.queues.get(key);
      if (!q) this.queues.set(key, (q = []));
      q.push(p);
      this.queued++;
      this.pump();
    });
  }

  /** Rejects everything queued with UNAVAILABLE and refuses new items. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const q of this.queues.values()) {
      for (const p of q.splice(0)) {
        this.detach(p);
        p.reject(new CuriaError('UNAVAILABLE', 'server shutting down; retry on another replica'));
      }
    }
    this.queued = 0;
  }

  /** Suggested wait before retrying when shed, ms. */
  retryAfterMs(): number {
    if (this.throughputPerMs <= 0) return 1000;
    return Math.min(30_000, Math.max(50, Math.round(this.queued / this.throughputPerMs)));
  }

  private pump(): void {
    const concurrency = this.options.concurrency ?? 1;
    while (this.running < concurrency) {
      const next = this.pickReadyQueue();
      if (next === null) break;
      void this.runBatch(next);
    }
    this.armTimer();
  }

  /** A key whose queue is full or whose oldest item waited long enough. */
  private pickReadyQueue(): string | null {
    const now = performance.now();
    let best: string | null = null;
    let oldest = Infinity;
    for (const [key, q] of this.queues) {
      const head = q[0];
      if (!head) continue;
      const ready =
        q.length >= this.options.maxBatchSize || now - head.enqueued >= this.options.maxQueueDelayMs;
      if (ready && head.enqueued < oldest) {
        oldest = head.enqueued;
        best = key;
      }
    }
    return best;
  }

  private armTimer(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.queued === 0 || this.running >= (this.options.concurrency ?? 1)) return;
    let oldest = Infinity;
    for (const q of this.queues.values()) if (q[0]) oldest = Math.min(oldest, q[0].enqueued);
    const wait = Math.max(0, oldest + this.options.maxQueueDelayMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.pump();
    }, wait);
  }

  private async runBatch(key: string): Promise<void> {
    const q = this.queues.get(key) ?? [];
    const taken = q.splice(0, this.options.maxBatchSize);
    this.queued -= taken.length;
    if (q.length === 0) this.queues.delete(key);
    const live = taken.filter((p) => !p.signal?.aborted);
    for (const p of taken) this.detach(p);
    for (const p of taken) if (p.signal?.aborted) p.reject(abortError());
    if (live.length === 0) {
      this.pump();
      return;
    }
    this.running++;
    const start = performance.now();
    try {
      const outputs = await this.options.run(
        live.map((p) => p.item),
        key,
      );
      if (outputs.length !== live.length)
        throw new Error(`batch returned ${outputs.length} outputs for ${live.length} inputs`);
      live.forEach((p, i) => p.resolve(outputs[i]!));
    } catch (err) {
      for (const p of live) p.reject(err);
    } finally {
      const computeMs = performance.now() - start;
      const rate = live.length / Math.max(computeMs, 1e-3);
      this.throughputPerMs = this.throughputPerMs === 0 ? rate : 0.8 * this.throughputPerMs + 0.2 * rate;
      this.options.onBatch?.({
        key,
        size: live.length,
        queueWaitMs: live.map((p) => start - p.enqueued),
        computeMs,
        dropped: taken.length - live.length,
      });
      this.running--;
      this.pump();
    }
  }

  private detach(p: Pending<I, O>): void {
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
  }
}

function abortError(): Error {
  const e = new Error('the caller cancelled the request');
  e.name = 'AbortError';
  return e;
}
