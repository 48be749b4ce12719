import { CuriaError, isCuriaError } from '@curia/errors';
import { curiaTracer, DynamicBatcher, withSpan, type BatchStats } from '@curia/kit';
import type { EmbedOutputName } from '@curia/model';

import type { EmbedMetrics } from './metrics.js';
import type { ModelEntry } from './models.js';
import type { SliceTokens } from './postprocess.js';

/** Batching limits of {@link EmbedScheduler}. */
export interface SchedulerLimits {
  readonly maxBatch: number;
  readonly maxQueueDelayMs: number;
  readonly maxQueueSlices: number;
}

/** What the batch that computed a slice did, for the stream summary. */
export interface SliceRun {
  readonly tokens: SliceTokens;
  /** Sequence number of the batch (to count each batch once per stream). */
  readonly batchId: number;
  readonly batchSize: number;
  readonly queueMs: number;
  readonly computeMs: number;
}

interface Job {
  readonly entry: ModelEntry;
  readonly pixels: Float32Array;
  readonly outputs: readonly EmbedOutputName[];
  readonly enqueuedAt: number;
  /** Called once when the job leaves the queue (picked or dropped). */
  readonly dequeued: () => void;
}

/**
 * One {@link DynamicBatcher} shared by every stream (key = model): stacks the slices of a batch,
 * runs the backbone once with the union of the ORT outputs they need, and hands each slice views
 * of its own token rows. Keeps the queue-depth, wait, compute, batch-size and slice metrics.
 */
export class EmbedScheduler {
  private readonly batcher: DynamicBatcher<Job, SliceRun>;
  private readonly depth = new Map<string, number>();
  private nextBatchId = 0;

  constructor(
    private readonly limits: SchedulerLimits,
    private readonly metrics: EmbedMetrics,
  ) {
    this.batcher = new DynamicBatcher<Job, SliceRun>({
      maxBatchSize: limits.maxBatch,
      maxQueueDelayMs: limits.maxQueueDelayMs,
      maxQueueSize: limits.maxQueueSlices,
      // One ORT session per model already uses every core: run one batch at a time.
      concurrency: 1,
      run: (jobs) => this.runBatch(jobs),
      onBatch: (s) => this.observe(s),
    });
  }

  /**
   * Queues one slice for `entry`; resolves with its token sequences. RESOURCE_EXHAUSTED (with a
   * retry hint) when the queue is full; rejects with an AbortError when `signal` fires first.
   * `pixels` must already be checked finite (the codec's `decodeSlice` does): the engine skips its scan.
   */
  async submit(
    entry: ModelEntry,
    pixels: Float32Array,
    outputs: readonly EmbedOutputName[],
    signal: AbortSignal,
  ): Promise<SliceRun> {
    let left = false;
    const key = entry.key;
    const job: Job = {
      entry,
      pixels,
      outputs,
      enqueuedAt: performance.now(),
      dequeued: () => {
        if (left) return;
        left = true;
        this.setDepth(key, -1);
      },
    };
    const span = curiaTracer().startSpan('embed.queue', { attributes: { 'curia.model': key } });
    this.setDepth(key, +1);
    try {
      return await this.batcher.submit(job, key, signal);
    } catch (e) {
      if (isCuriaError(e) && e.code === 'RESOURCE_EXHAUSTED') {
        this.metrics.shed.inc();
        const after = e.retryAfterMs ?? this.batcher.retryAfterMs();
        throw new CuriaError('RESOURCE_EXHAUSTED', `${e.message}; retry after ${after}ms`, {
          retryAfterMs: after,
        });
      }
      throw e;
    } finally {
      job.dequeued();
      span.end();
    }
  }

  /**
   * Refuses a new stream up front while the queue is full, before its caller spends bandwidth
   * on slices that would be shed: RESOURCE_EXHAUSTED with the same retry hint as a shed slice.
   */
  admitStream(): void {
    const depth = this.batcher.queueDepth;
    if (depth < this.limits.maxQueueSlices) return;
    this.metrics.shed.inc();
    const after = this.batcher.retryAfterMs();
    throw new CuriaError(
      'RESOURCE_EXHAUSTED',
      `inference queue is full (${depth} slices waiting, limit ${this.limits.maxQueueSlices}); retry after ${after}ms or on another replica`,
      { retryAfterMs: after },
    );
  }

  /** Slices waiting across all models. */
  get queueDepth(): number {
    return this.batcher.queueDepth;
  }

  /** Rejects everything queued with UNAVAILABLE and refuses new slices. */
  close(): void {
    this.batcher.close();
  }

  private setDepth(key: string, delta: number): void {
    const n = Math.max(0, (this.depth.get(key) ?? 0) + delta);
    this.depth.set(key, n);
    this.metrics.queueDepth.set({ model: key }, n);
  }

  private async runBatch(jobs: Job[]): Promise<SliceRun[]> {
    const first = jobs[0]!;
    const entry = first.entry;
    const start = performance.now();
    for (const j of jobs) j.dequeued();
    const per = entry.engine.pixelsPerSlice;
    const stacked = new Float32Array(jobs.length * per);
    const outputs = new Set<EmbedOutputName>();
    jobs.forEach((j, i) => {
      stacked.set(j.pixels, i * per);
      for (const o of j.outputs) outputs.add(o);
    });
    const batchId = this.nextBatchId++;
    const res = await withSpan(
      'embed.compute',
      { 'curia.model': entry.key, 'curia.batch_size': jobs.length },
      // `stacked` is ours alone: an engine thread may take its buffer instead of copying it.
      () =>
        entry.engine.run(stacked, jobs.length, {
          outputs: [...outputs],
          transferInput: true,
          inputChecked: true, // decodeSlice rejected any non-finite slice
        }),
    );
    const computeMs = performance.now() - start;
    this.metrics.slices.inc({ model: entry.key }, jobs.length);
    const seq = res.tokens * res.hidden;
    return jobs.map((j, i) => {
      const at = i * seq;
      const lhs = res.lastHiddenState?.subarray(at, at + seq);
      const pre = res.lastBlockPrenorm?.subarray(at, at + seq);
      return {
        tokens: { ...(lhs ? { lastHiddenState: lhs } : {}), ...(pre ? { lastBlockPrenorm: pre } : {}) },
        batchId,
        batchSize: jobs.length,
        queueMs: start - j.enqueuedAt,
        computeMs,
      };
    });
  }

  private observe(s: BatchStats): void {
    const model = { model: s.key };
    if (s.size > 0) {
      this.metrics.batchSize.observe(model, s.size);
      this.metrics.compute.observe(model, s.computeMs / 1000);
    }
    for (const w of s.queueWaitMs) this.metrics.queueWait.observe(model, w / 1000);
  }
}
