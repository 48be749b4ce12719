/**
 * CI smoke of the overload and fault experiments (real service processes on loopback, real ORT,
 * bounded runs). Asserts properties, never speeds: overload is shed with RESOURCE_EXHAUSTED and a
 * retry-after trailer, no call outlives its deadline, only expected statuses appear, SIGTERM loses
 * no call, SIGKILL fails only calls in flight on the killed replica and only with UNAVAILABLE,
 * a restarted replica takes traffic again, and every process exits cleanly.
 */
import type { LocalCluster } from '@curia/cli';
import { afterEach, describe, expect, it } from 'vitest';

import { OutputTail, replicaAddress, replicaTargets, startCluster } from './cluster.js';
import { runLoad, type LoadOptions } from './generator.js';
import { RawClient } from './raw-client.js';
import { untilServedBy } from './rejoin.js';
import { ResourceSampler } from './replicas.js';
import { embedScenario } from './scenarios.js';

let cluster: LocalCluster | null = null;
let client: RawClient | null = null;
const tail = new OutputTail();

afterEach(async () => {
  client?.close();
  client = null;
  await cluster?.stop(5_000);
  cluster = null;
});

function statuses(byCode: Readonly<Record<string, number>>): string[] {
  return Object.keys(byCode).sort();
}

describe('overload smoke (experiment 2, short)', () => {
  it('sheds with RESOURCE_EXHAUSTED quickly, keeps admitted calls within their deadline, and exits cleanly', async () => {
    cluster = await startCluster(
      {
        only: ['embed'],
        // A small queue so that shedding starts within a few seconds on any machine.
        env: {
          CURIA_EMBED_MAX_QUEUE_SLICES: '4',
          CURIA_EMBED_MAX_BATCH: '4',
          CURIA_SHUTDOWN_GRACE_MS: '5000',
        },
      },
      tail,
    );
    client = new RawClient(replicaAddress(cluster, 'embed'));
    const scenario = embedScenario(client);
    // Capacity on this machine right now (closed loop), then three times that, open loop.
    const probe = await runLoad(scenario.call, {
      mode: { kind: 'closed', concurrency: 4 },
      durationMs: 4_000,
      maxRequests: 200,
      deadlineMs: 20_000,
    });
    expect(statuses(probe.byCode), tail.text()).toEqual(['OK']);
    const sampler = new ResourceSampler(replicaTargets(cluster, 'embed'), 500).start();
    const deadlineMs = 20_000;
    const result = await runLoad(scenario.call, {
      mode: { kind: 'open', ratePerSec: Math.max(3, 3 * probe.unitsPerSec) },
      durationMs: 5_000,
      maxRequests: 200,
      deadlineMs,
    });
    const memory = await sampler.stop();
    expect(result.hung, tail.text()).toBe(0);
    expect(result.overdue).toBe(0);
    expect(result.completed).toBe(result.started);
    expect(statuses(result.byCode)).toEqual(['OK', 'RESOURCE_EXHAUSTED']);
    expect(result.shedWithRetryAfter).toBe(result.byCode.RESOURCE_EXHAUSTED);
    // Shed calls are answered at once, not after queueing.
    expect(result.latencyByCode.RESOURCE_EXHAUSTED!.p99).toBeLessThan(1_000);
    expect(result.latency.max).toBeLessThan(deadlineMs);
    const rss = (memory.embed ?? []).map((p) => p.rssBytes);
    expect(rss.length).toBeGreaterThan(2);
    expect(Math.max(...rss) - rss[0]!).toBeLessThan(512 * 2 ** 20);
    client.close();
    client = null;
    const codes = await cluster.stop(10_000);
    cluster = null;
    expect(Object.fromEntries(codes)).toEqual({ embed: 0 });
  });
});

describe('fault smoke (experiment 4, short)', () => {
  it(
    'SIGTERM loses no call, SIGKILL fails only in-flight calls with UNAVAILABLE, restarts rejoin',
    { timeout: 100_000 },
    async () => {
      cluster = await startCluster(
        { only: ['embed'], replicas: { embed: 2 }, env: { CURIA_SHUTDOWN_GRACE_MS: '15000' } },
        tail,
      );
      const c = cluster;
      const a1 = replicaAddress(c, 'embed-1');
      const a2 = replicaAddress(c, 'embed-2');
      client = new RawClient(`${a1},${a2}`);
      const scenario = embedScenario(client);
      const load = (extra: Partial<LoadOptions>): LoadOptions => ({
        mode: { kind: 'closed', concurrency: 4 },
        durationMs: 7_000,
        maxRequests: 400,
        deadlineMs: 30_000,
        keepRecords: true,
        ...extra,
      });

      // SIGTERM under load: the replica drains, stragglers are retried on the other one.
      let termCode: number | null = -1;
      const termed = (async () => {
        await new Promise((r) => setTimeout(r, 2_000));
        termCode = await c.kill('embed-1', 'SIGTERM');
      })();
      const drain = await runLoad(scenario.call, load({ retry: { maxAttempts: 3, codes: ['UNAVAILABLE'] } }));
      await termed;
      expect(termCode).toBe(0);
      expect(drain.hung, tail.text()).toBe(0);
      expect(drain.byCode).toEqual({ OK: drain.started });
      expect(drain.okByPeer[a1] ?? 0).toBeGreaterThan(0);
      expect(drain.okByPeer[a2] ?? 0).toBeGreaterThan(0);

      await c.restartReplica('embed-1');
      // Both replicas must be in the balancing set, else the kill leaves the channel with none.
      await untilServedBy(scenario.call, a1);

      // SIGKILL under load, no client retries: only calls in flight on embed-2 fail, as UNAVAILABLE.
      let exitedAt = Number.NaN;
      const t0 = performance.now();
      const killed = (async () => {
        await new Promise((r) => setTimeout(r, 2_500));
        await c.kill('embed-2', 'SIGKILL');
        exitedAt = performance.now() - t0;
      })();
      const crash = await runLoad(scenario.call, load({}));
      await killed;
      expect(crash.hung).toBe(0);
      const failed = (crash.records ?? []).filter((r) => r.code !== 'OK');
      expect(statuses(crash.byCode).filter((s) => s !== 'OK')).toEqual(failed.length ? ['UNAVAILABLE'] : []);
      const failedSummary = JSON.stringify({
        exitedAt: Math.round(exitedAt),
        failed: failed.length,
        sample: [...failed.slice(0, 6), ...failed.slice(-3)].map((f) => ({
          peer: f.peer,
          startMs: Math.round(f.startMs),
          latencyMs: Math.round(f.latencyMs),
          details: f.details,
        })),
      });
      expect(failed.length, failedSummary).toBeLessThanOrEqual(4);
      for (const f of failed) {
        expect(f.peer).toBe(a2);
        // In flight on embed-2 when it died (started before its exit was observed, +50 ms slack).
        expect(f.startMs).toBeLessThan(exitedAt + 50);
      }
      expect(crash.byCode.OK ?? 0).toBeGreaterThan(0);

      // The killed replica restarts on its port and the same channel sends it traffic again.
      await c.restartReplica('embed-2');
      const rejoin = await runLoad(scenario.call, load({ durationMs: 8_000 }));
      expect(statuses(rejoin.byCode)).toEqual(['OK']);
      expect(rejoin.okByPeer[a2] ?? 0).toBeGreaterThan(0);

      client.close();
      client = null;
      const codes = await c.stop(20_000);
      cluster = null;
      expect(Object.fromEntries(codes)).toEqual({ 'embed-1': 0, 'embed-2': 0 });
    },
  );
});
