import { describe, expect, it } from 'vitest';

import { CLIENT_TIMEOUT, runLoad, type CallFn } from './generator.js';
import { LatencyHistogram } from './histogram.js';

const delay = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });

describe('runLoad', () => {
  it('open loop keeps its arrival rate whatever the latency, and stops at maxRequests', async () => {
    const slow: CallFn = async () => {
      await delay(150);
      return { code: 'OK', units: 2 };
    };
    const r = await runLoad(slow, {
      mode: { kind: 'open', ratePerSec: 100 },
      durationMs: 10_000,
      maxRequests: 50,
      deadlineMs: 1_000,
    });
    expect(r.started).toBe(50);
    expect(r.completed).toBe(50);
    // 50 arrivals at 100/s are offered in ~0.5 s although each call takes 150 ms.
    expect(r.offeredMs).toBeGreaterThan(450);
    expect(r.offeredMs).toBeLessThan(1_000);
    expect(r.latency.p50).toBeGreaterThanOrEqual(149);
    expect(r.unitsPerSec).toBeCloseTo(2 * r.okPerSec, 6);
  });

  it('closed loop keeps exactly `concurrency` calls in flight and stops at durationMs', async () => {
    let inFlight = 0;
    let peak = 0;
    const call: CallFn = async () => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await delay(20);
      inFlight--;
      return { code: 'OK', peer: '127.0.0.1:1' };
    };
    const r = await runLoad(call, {
      mode: { kind: 'closed', concurrency: 3 },
      durationMs: 300,
      maxRequests: 10_000,
      deadlineMs: 1_000,
    });
    expect(peak).toBe(3);
    expect(r.started).toBeGreaterThan(20);
    expect(r.started).toBeLessThan(60);
    expect(r.okByPeer).toEqual({ '127.0.0.1:1': r.started });
  });

  it('abandons a call that ignores its deadline, counting it as hung, and never waits longer', async () => {
    const stuck: CallFn = (ctx) => delay(60_000, ctx.signal).then(() => ({ code: 'OK' }));
    const t0 = performance.now();
    const r = await runLoad(stuck, {
      mode: { kind: 'closed', concurrency: 2 },
      durationMs: 50,
      maxRequests: 2,
      deadlineMs: 100,
      hangGraceMs: 100,
    });
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(r.hung).toBe(2);
    expect(r.byCode).toEqual({ [CLIENT_TIMEOUT]: 2 });
  });

  it('retries the configured statuses on another attempt and records the failed peers', async () => {
    // Every first attempt fails on peer a, every retry succeeds on peer b.
    let n = 0;
    const flaky: CallFn = () =>
      Promise.resolve(n++ % 2 === 0 ? { code: 'UNAVAILABLE', peer: 'a' } : { code: 'OK', peer: 'b' });
    const r = await runLoad(flaky, {
      mode: { kind: 'closed', concurrency: 1 },
      durationMs: 10_000,
      maxRequests: 5,
      deadlineMs: 1_000,
      keepRecords: true,
      retry: { maxAttempts: 2, codes: ['UNAVAILABLE'], backoffMs: 1 },
    });
    expect(r.byCode).toEqual({ OK: 5 });
    expect(r.retries).toBe(5);
    expect(r.records?.every((x) => x.attempts === 2 && x.retriedPeers[0] === 'a')).toBe(true);
  });

  it('counts shed calls with a retry-after trailer and reports latency per status', async () => {
    const call: CallFn = (ctx) =>
      Promise.resolve(ctx.seq % 4 === 0 ? { code: 'RESOURCE_EXHAUSTED', retryAfterMs: 50 } : { code: 'OK' });
    const r = await runLoad(call, {
      mode: { kind: 'closed', concurrency: 2 },
      durationMs: 10_000,
      maxRequests: 40,
      deadlineMs: 1_000,
    });
    expect(r.byCode).toEqual({ OK: 30, RESOURCE_EXHAUSTED: 10 });
    expect(r.shedWithRetryAfter).toBe(10);
    expect(r.latencyByCode.RESOURCE_EXHAUSTED?.count).toBe(10);
  });

  it('separates the rate delivered under load from the drain tail of queued calls', async () => {
    // A "server" of capacity 20/s: calls queue behind each other, 50 ms apiece.
    let free = 0;
    const queued: CallFn = async () => {
      const now = performance.now();
      free = Math.max(free, now) + 50;
      await delay(free - now);
      return { code: 'OK' };
    };
    const r = await runLoad(queued, {
      mode: { kind: 'open', ratePerSec: 60 },
      durationMs: 1_000,
      maxRequests: 60,
      deadlineMs: 10_000,
    });
    expect(r.byCode).toEqual({ OK: 60 });
    // While offered: ~20/s. Over the wall time (until the queue drained, ~3 s): also ~20/s, but
    // only because the tail is counted; the started-per-offered-time ratio would claim 60/s.
    expect(r.steadyUnitsPerSec).toBeGreaterThan(14);
    expect(r.steadyUnitsPerSec).toBeLessThan(26);
    expect(r.elapsedMs).toBeGreaterThan(2 * r.offeredMs);
  });

  it('refuses unbounded runs', async () => {
    const ok: CallFn = () => Promise.resolve({ code: 'OK' });
    await expect(
      runLoad(ok, { mode: { kind: 'open', ratePerSec: 1 }, durationMs: 0, maxRequests: 1, deadlineMs: 1 }),
    ).rejects.toThrow(/bounded/);
    await expect(
      runLoad(ok, {
        mode: { kind: 'open', ratePerSec: 1 },
        durationMs: 1,
        maxRequests: Number.NaN,
        deadlineMs: 1,
      }),
    ).rejects.toThrow(/bounded/);
  });
});

describe('LatencyHistogram', () => {
  it('matches exact percentiles of a known sample within HDR precision', () => {
    const h = new LatencyHistogram();
    const values = Array.from({ length: 10_000 }, (_, i) => (i + 1) / 10); // 0.1 … 1000 ms
    for (const v of values) h.record(v);
    const s = h.summary();
    expect(s.count).toBe(10_000);
    expect(s.p50).toBeCloseTo(500, -0.5);
    expect(Math.abs(s.p99 - 990) / 990).toBeLessThan(0.002);
    expect(Math.abs(s.max - 1000) / 1000).toBeLessThan(0.002);
    expect(Math.abs(s.mean - 500.05) / 500).toBeLessThan(0.002);
    expect(new LatencyHistogram().summary().p50).toBeNaN();
  });
});
