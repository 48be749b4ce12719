/**
 * CI smoke of the overload and fault experiments (real service processes on loopback, real ORT,
 * bounded runs). Asserts properties, never speeds: overload is shed with RESOURCE_EXHAUSTED and a
 * retry-after trailer, no call outlives its deadline, only expected statuses appear, SIGTERM loses
 * no call, SIGKILL fails only calls in flight on the killed replica and only with UNAVAILABLE,
 * a restarted replica takes traffic again, Segment and Register shed beyond their concurrency limit
 * at once and end idle, a cancelled registration stops working, and every process exits cleanly.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { LocalCluster } from '@curia/cli';
import { afterEach, describe, expect, it } from 'vitest';

import { OutputTail, replicaAddress, replicaTargets, startCluster } from './cluster.js';
import { runLoad, type CallFn, type CallOutcome, type LoadOptions } from './generator.js';
import { scrape, sumSamples } from './prometheus.js';
import { RawClient } from './raw-client.js';
import { untilServedBy } from './rejoin.js';
import { ResourceSampler } from './replicas.js';
import { embedScenario, registerScenario, segmentScenario, type Scenario } from './scenarios.js';

let cluster: LocalCluster | null = null;
let client: RawClient | null = null;
let work: string | null = null;
const tail = new OutputTail();

afterEach(async () => {
  client?.close();
  client = null;
  await cluster?.stop(5_000);
  cluster = null;
  if (work) await rm(work, { recursive: true, force: true });
  work = null;
});

function statuses(byCode: Readonly<Record<string, number>>): string[] {
  return Object.keys(byCode).sort();
}

/** Closes the client and stops the cluster (SIGTERM, then SIGKILL after `graceMs`): exit code per replica. */
async function stopAll(graceMs: number): Promise<Record<string, number | null>> {
  client?.close();
  client = null;
  const codes = await cluster?.stop(graceMs);
  cluster = null;
  return Object.fromEntries(codes ?? []);
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
    expect(await stopAll(10_000)).toEqual({ embed: 0 });
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

      expect(await stopAll(20_000)).toEqual({ 'embed-1': 0, 'embed-2': 0 });
    },
  );
});

/**
 * Preprocess, Embed and `service` (a stage-calling service with a `ConcurrencyGate`), its
 * `CURIA_<SERVICE>_MAX_CONCURRENT` and `_RETRY_AFTER_MS` set, plus `extra` settings of it.
 */
function startGatedCluster(
  service: 'segment' | 'register',
  maxConcurrent: number,
  retryAfterMs: number,
  extra: Readonly<Record<string, string>> = {},
): Promise<LocalCluster> {
  const prefix = `CURIA_${service.toUpperCase()}`;
  return startCluster(
    {
      only: ['preprocess', 'embed', service],
      env: { CURIA_SHUTDOWN_GRACE_MS: '5000' },
      serviceEnv: {
        [service]: {
          [`${prefix}_MAX_CONCURRENT`]: String(maxConcurrent),
          [`${prefix}_RETRY_AFTER_MS`]: String(retryAfterMs),
          ...extra,
        },
      },
    },
    tail,
  );
}

/** The sum of a metric's samples on one replica's /metrics (NaN when it does not answer). */
async function metric(c: LocalCluster, service: string, name: string): Promise<number> {
  const samples = await scrape(replicaTargets(c, service)[0]!.metricsUrl);
  return samples ? sumSamples(samples, name) : Number.NaN;
}

/**
 * Polls `[service, metric]` gauges every 50 ms until all read 0 or `withinMs` passes; returns the
 * last readings and when they first all read 0 (`performance.now()`, NaN if never).
 */
async function untilIdle(
  c: LocalCluster,
  gauges: readonly (readonly [string, string])[],
  withinMs: number,
): Promise<{ readonly values: number[]; readonly at: number }> {
  const t0 = performance.now();
  let values = gauges.map(() => Number.NaN);
  while (performance.now() - t0 < withinMs) {
    values = await Promise.all(gauges.map(([service, name]) => metric(c, service, name)));
    if (values.every((x) => x === 0)) return { values, at: performance.now() };
    await new Promise((r) => setTimeout(r, 50));
  }
  return { values, at: Number.NaN };
}

/** One call of `scenario` outside a load run, with its own deadline (and signal, to cancel it). */
function callOnce(scenario: Scenario, deadlineMs: number, signal = new AbortController().signal) {
  return scenario.call({ deadline: Date.now() + deadlineMs, signal, seq: 0 });
}

/** Wraps `call`, recording the retry hints and the messages (digits as N) of its RESOURCE_EXHAUSTED answers. */
function recordingRefusals(call: CallFn) {
  const refusals = { hints: new Set<number | undefined>(), messages: new Set<string>() };
  const wrapped: CallFn = async (ctx) => {
    const outcome: CallOutcome = await call(ctx);
    if (outcome.code === 'RESOURCE_EXHAUSTED') {
      refusals.hints.add(outcome.retryAfterMs);
      refusals.messages.add((outcome.details ?? '').replace(/\d+/g, 'N'));
    }
    return outcome;
  };
  return { call: wrapped, refusals };
}

const ms = (x: number | undefined): string => `${(x ?? Number.NaN).toFixed(0)} ms`;

describe('segment shedding smoke (issue 15)', () => {
  it(
    'sheds Segment beyond CURIA_SEGMENT_MAX_CONCURRENT with RESOURCE_EXHAUSTED + retry-after-ms at once, serves the rest, ends idle',
    { timeout: 150_000 },
    async () => {
      const maxConcurrent = 2;
      const retryAfterMs = 250;
      const deadlineMs = 30_000;
      work = await mkdtemp(join(tmpdir(), 'curia-loadtest-segment-'));
      cluster = await startGatedCluster('segment', maxConcurrent, retryAfterMs, {
        CURIA_SEGMENT_HEADS_DIR: join(work, 'segment-heads'),
      });
      const c = cluster;
      client = new RawClient(replicaAddress(c, 'segment'));
      const scenario = segmentScenario(client);
      // One call alone (warms the sessions), then the capacity at the admitted concurrency.
      expect((await callOnce(scenario, deadlineMs)).code, tail.text()).toBe('OK');
      const probe = await runLoad(scenario.call, {
        mode: { kind: 'closed', concurrency: maxConcurrent },
        durationMs: 4_000,
        maxRequests: 100,
        deadlineMs,
      });
      expect(probe.byCode, tail.text()).toEqual({ OK: probe.started });

      // Four times that, open loop: about 4× the admitted calls are wanted at once.
      const { call, refusals } = recordingRefusals(scenario.call);
      const shedBefore = await metric(c, 'segment', 'curia_segment_shed_total');
      const rate = Math.max(4, 4 * probe.unitsPerSec);
      const durationMs = 6_000;
      const result = await runLoad(call, {
        mode: { kind: 'open', ratePerSec: rate },
        durationMs,
        maxRequests: Math.ceil((rate * durationMs) / 1000) + 1,
        deadlineMs,
      });
      const ok = result.latencyByCode.OK;
      const shed = result.latencyByCode.RESOURCE_EXHAUSTED;
      console.log(
        `segment smoke: CURIA_SEGMENT_MAX_CONCURRENT=${maxConcurrent}; probe ${probe.unitsPerSec.toFixed(2)} studies/s ` +
          `(closed loop ×${maxConcurrent}, p50 ${ms(probe.latency.p50)}); offered ${rate.toFixed(2)}/s for ${durationMs / 1000} s: ` +
          `${result.started} calls, OK ${result.byCode.OK ?? 0} (p50 ${ms(ok?.p50)}, p99 ${ms(ok?.p99)}, max ${ms(ok?.max)}), ` +
          `RESOURCE_EXHAUSTED ${result.byCode.RESOURCE_EXHAUSTED ?? 0} (p50 ${ms(shed?.p50)}, p99 ${ms(shed?.p99)}, max ${ms(shed?.max)}, ` +
          `retry-after-ms ${[...refusals.hints].join(',')})` +
          (statuses(result.byCode).length > 2 ? `; others ${JSON.stringify(result.errorSamples)}` : ''),
      );
      expect(result.hung, tail.text()).toBe(0);
      expect(result.overdue).toBe(0);
      expect(result.completed).toBe(result.started);
      expect(statuses(result.byCode), JSON.stringify(result.errorSamples)).toEqual([
        'OK',
        'RESOURCE_EXHAUSTED',
      ]);
      expect(Math.max(ok!.max, shed!.max)).toBeLessThan(deadlineMs);
      // Every refusal is the admission limit's, with the configured hint.
      expect(result.shedWithRetryAfter).toBe(result.byCode.RESOURCE_EXHAUSTED);
      expect([...refusals.hints]).toEqual([retryAfterMs]);
      expect([...refusals.messages]).toEqual([
        'this segment replica is running N calls (CURIA_SEGMENT_MAX_CONCURRENT); retry after Nms',
      ]);
      expect((await metric(c, 'segment', 'curia_segment_shed_total')) - shedBefore).toBe(
        result.byCode.RESOURCE_EXHAUSTED,
      );
      // Refusals are answered at once, not after queueing behind admitted calls.
      expect(shed!.p99).toBeLessThan(ok!.p50 / 4);

      // After the load: nothing left running in Segment or Embed, and a normal call succeeds.
      const idle = await untilIdle(
        c,
        [
          ['segment', 'curia_segment_in_flight'],
          ['embed', 'curia_embed_inflight_slices'],
        ],
        10_000,
      );
      expect(idle.values).toEqual([0, 0]);
      const after = await callOnce(scenario, deadlineMs);
      expect(after.code, after.details).toBe('OK');
      expect(after.units).toBe(1);

      expect(await stopAll(10_000)).toEqual({ preprocess: 0, embed: 0, segment: 0 });
    },
  );
});

describe('register shedding and cancel smoke (issue 16)', () => {
  it(
    'sheds Register beyond CURIA_REGISTER_MAX_CONCURRENT at once, serves the admitted call, stops a cancelled registration, ends idle',
    { timeout: 150_000 },
    async () => {
      const maxConcurrent = 1;
      const burst = 4;
      const retryAfterMs = 250;
      const deadlineMs = 60_000;
      // MIND features need neither Preprocess nor Embed, but the service dials both.
      cluster = await startGatedCluster('register', maxConcurrent, retryAfterMs);
      const c = cluster;
      client = new RawClient(replicaAddress(c, 'register'));
      const scenario = registerScenario(client);
      const inFlight = [['register', 'curia_register_in_flight']] as const;

      // One registration alone: it works, and how long one takes here.
      const t0 = performance.now();
      const solo = await callOnce(scenario, deadlineMs);
      const soloMs = performance.now() - t0;
      expect(solo.code, `${solo.details}\n${tail.text()}`).toBe('OK');

      // A burst of calls at once: the limit's worth is admitted, the rest refused at once.
      const { call, refusals } = recordingRefusals(scenario.call);
      const shedBefore = await metric(c, 'register', 'curia_register_shed_total');
      const result = await runLoad(call, {
        mode: { kind: 'closed', concurrency: burst },
        durationMs: deadlineMs,
        maxRequests: burst,
        deadlineMs,
      });
      const shedDelta = (await metric(c, 'register', 'curia_register_shed_total')) - shedBefore;
      const ok = result.latencyByCode.OK;
      const shed = result.latencyByCode.RESOURCE_EXHAUSTED;
      expect(result.hung, tail.text()).toBe(0);
      expect(result.overdue).toBe(0);
      expect(result.completed).toBe(burst);
      expect(result.byCode, JSON.stringify(result.errorSamples)).toEqual({
        OK: maxConcurrent,
        RESOURCE_EXHAUSTED: burst - maxConcurrent,
      });
      expect(result.shedWithRetryAfter).toBe(burst - maxConcurrent);
      expect([...refusals.hints]).toEqual([retryAfterMs]);
      expect([...refusals.messages]).toEqual([
        'this register replica is running N calls (CURIA_REGISTER_MAX_CONCURRENT); retry after Nms',
      ]);
      expect(shedDelta).toBe(burst - maxConcurrent);
      // Refused at once, not after the running registration.
      expect(shed!.max).toBeLessThan(Math.min(1_000, ok!.p50 / 4));

      // Nothing left running, and a normal call succeeds.
      const burstEnd = performance.now();
      const idle = await untilIdle(c, inFlight, 10_000);
      expect(idle.values).toEqual([0]);
      const after = await callOnce(scenario, deadlineMs);
      expect(after.code, after.details).toBe('OK');
      expect(after.units).toBe(1);

      // Cancel: abort at the engine's first progress event (the inputs are read, the optimiser runs).
      const abort = new AbortController();
      let abortedAt = Number.NaN;
      let abortedStage = '';
      const cancelling = registerScenario(client, {
        onProgress: (p) => {
          if (p.stage === 'read' || abort.signal.aborted) return;
          abortedStage = `${p.stage} ${p.done}/${p.total}`;
          abortedAt = performance.now();
          abort.abort();
        },
      });
      const cancelled = await callOnce(cancelling, deadlineMs, abort.signal);
      expect(cancelled.code).toBe('CANCELLED');
      expect(abortedStage).not.toBe('');
      const stopped = await untilIdle(c, inFlight, 5_000);
      expect(stopped.values).toEqual([0]);
      const idleAfterAbortMs = stopped.at - abortedAt;
      // The engine stopped, not just the stream: the replica is idle once the call is gone
      // (an orphaned optimiser would burn about a core-second per second).
      const cpu = () => metric(c, 'register', 'process_cpu_seconds_total');
      const cpuBefore = await cpu();
      await new Promise((r) => setTimeout(r, 1_000));
      const idleCpuS = (await cpu()) - cpuBefore;
      expect(idleCpuS).toBeLessThan(0.5);
      const again = await callOnce(scenario, deadlineMs);
      expect(again.code, again.details).toBe('OK');

      console.log(
        `register smoke: CURIA_REGISTER_MAX_CONCURRENT=${maxConcurrent}; one registration ${ms(soloMs)} alone; ` +
          `burst of ${burst}: OK ${result.byCode.OK ?? 0} (${ms(ok?.max)}), RESOURCE_EXHAUSTED ${result.byCode.RESOURCE_EXHAUSTED ?? 0} ` +
          `(p50 ${ms(shed?.p50)}, max ${ms(shed?.max)}, retry-after-ms ${[...refusals.hints].join(',')}), ` +
          `curia_register_shed_total +${shedDelta}, in flight 0 ${ms(idle.at - burstEnd)} after the burst; ` +
          `cancelled at ${abortedStage}: in flight 0 ${ms(idleAfterAbortMs)} after the abort, ` +
          `then ${idleCpuS.toFixed(2)} CPU-s in 1 s; normal calls after each OK`,
      );

      expect(await stopAll(10_000)).toEqual({ preprocess: 0, embed: 0, register: 0 });
    },
  );
});
