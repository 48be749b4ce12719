import { isCuriaError } from '@curia/errors';
import { describe, expect, it } from 'vitest';

import { DynamicBatcher, type BatchStats } from './batcher.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function make(opts: {
  maxBatchSize?: number;
  maxQueueDelayMs?: number;
  maxQueueSize?: number;
  computeMs?: number;
}) {
  const batches: number[][] = [];
  const stats: BatchStats[] = [];
  const batcher = new DynamicBatcher<number, number>({
    maxBatchSize: opts.maxBatchSize ?? 4,
    maxQueueDelayMs: opts.maxQueueDelayMs ?? 20,
    maxQueueSize: opts.maxQueueSize ?? 100,
    run: async (items) => {
      batches.push(items);
      await sleep(opts.computeMs ?? 10);
      return items.map((x) => x * 2);
    },
    onBatch: (s) => stats.push(s),
  });
  return { batcher, batches, stats };
}

describe('DynamicBatcher', () => {
  it('merges concurrent submissions into batches and preserves each caller’s result', async () => {
    const { batcher, batches } = make({ maxBatchSize: 4 });
    const results = await Promise.all([1, 2, 3, 4, 5, 6].map((x) => batcher.submit(x)));
    expect(results).toEqual([2, 4, 6, 8, 10, 12]);
    expect(batches[0]).toEqual([1, 2, 3, 4]);
    expect(batches[1]).toEqual([5, 6]);
  });

  it('runs a partial batch after the queue delay', async () => {
    const { batcher, stats } = make({ maxBatchSize: 8, maxQueueDelayMs: 30 });
    const t0 = performance.now();
    expect(await batcher.submit(7)).toBe(14);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
    expect(stats[0]?.size).toBe(1);
  });

  it('sheds with RESOURCE_EXHAUSTED and a retry hint when the queue is full', async () => {
    const { batcher } = make({ maxBatchSize: 1, maxQueueSize: 2, computeMs: 50 });
    const first = batcher.submit(1); // computing
    await sleep(1);
    const queued = [batcher.submit(2), batcher.submit(3)];
    const err = await batcher.submit(4).catch((e: unknown) => e);
    expect(isCuriaError(err) && err.code).toBe('RESOURCE_EXHAUSTED');
    expect(isCuriaError(err) && err.retryAfterMs).toBeGreaterThan(0);
    await Promise.all([first, ...queued]);
  });

  it('drops a cancelled caller’s queued item without computing it', async () => {
    const { batcher, batches } = make({ maxBatchSize: 1, computeMs: 40 });
    const first = batcher.submit(1);
    await sleep(1);
    const ac = new AbortController();
    const cancelled = batcher.submit(2, '', ac.signal);
    const third = batcher.submit(3);
    ac.abort();
    await expect(cancelled).rejects.toMatchObject({ name: 'AbortError' });
    await Promise.all([first, third]);
    expect(batches.flat()).toEqual([1, 3]);
    expect(batcher.queueDepth).toBe(0);
  });

  it('keeps keys apart', async () => {
    const { batcher, batches } = make({ maxBatchSize: 4 });
    await Promise.all([batcher.submit(1, 'a'), batcher.submit(2, 'b'), batcher.submit(3, 'a')]);
    expect(batches.map((b) => b.join(',')).sort()).toEqual(['1,3', '2']);
  });

  it('rejects queued work with UNAVAILABLE on close', async () => {
    const { batcher } = make({ maxBatchSize: 1, computeMs: 30 });
    const first = batcher.submit(1);
    await sleep(1);
    const queued = batcher.submit(2);
    batcher.close();
    await expect(queued).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await first;
  });
});
