/**
 * Experiment 4 — faults under load, two Embed replicas (plus gateway, preprocess, heads):
 *  A. SIGTERM one Embed replica under direct Embed load → zero failed calls (drain + client retry
 *     of UNAVAILABLE), exit code 0;
 *  B. SIGKILL one Embed replica, client without retries → failures are UNAVAILABLE only, and only
 *     calls that were in flight on the killed replica;
 *  C. SIGKILL one Embed replica under AnalyzeStudy load → every study completes (the gateway
 *     retries the stage on the other replica);
 *  D. the killed replicas restart on their ports and take traffic again (direct and via gateway).
 *
 *     node loadtest/dist/experiments/faults.js [--quick]
 */
import { ANALYSIS_SERVICES } from '@curia/cli';

import { OutputTail, replicaAddress, replicaTargets, startCluster } from '../cluster.js';
import { runLoad, type LoadOptions, type LoadResult } from '../generator.js';
import { RawClient } from '../raw-client.js';
import { untilServedBy } from '../rejoin.js';
import { distribution, snapshot } from '../replicas.js';
import { runReport, timelinePanels, writeReport, type Check, type RunReport } from '../report.js';
import { analyzeScenario, embedScenario } from '../scenarios.js';
import { experimentArgs, nowIso, progress, SHARED_MACHINE_NOTE } from './common.js';

const args = experimentArgs('faults');
const startedAt = nowIso();
const phaseMs = args.quick ? 10_000 : 20_000;
const faultAtMs = args.quick ? 3_000 : 7_000;
const concurrency = 6;
const tail = new OutputTail();
const runs: RunReport[] = [];
const checks: Check[] = [];
const summary: Record<string, unknown> = {};
const panels: ReturnType<typeof timelinePanels> = [];

const cluster = await startCluster(
  {
    only: [...ANALYSIS_SERVICES],
    replicas: { embed: 2 },
    env: { CURIA_SHUTDOWN_GRACE_MS: '20000' },
  },
  tail,
);
const c = cluster;
let exitCodes = new Map<string, number | null>();

/** Runs `load` and, `faultAtMs` into it, `fault`; resolves with the result and the fault's own time. */
async function underLoad(
  load: () => Promise<LoadResult>,
  fault: () => Promise<void>,
): Promise<{ result: LoadResult; faultStart: number; faultEnd: number }> {
  const t0 = performance.now();
  let faultStart = Number.NaN;
  let faultEnd = Number.NaN;
  const f = (async () => {
    await new Promise((r) => setTimeout(r, faultAtMs));
    faultStart = performance.now() - t0;
    await fault();
    faultEnd = performance.now() - t0;
  })();
  const result = await load();
  await f;
  return { result, faultStart, faultEnd };
}

try {
  const a1 = replicaAddress(c, 'embed-1');
  const a2 = replicaAddress(c, 'embed-2');
  const direct = new RawClient(`${a1},${a2}`);
  const embedLoad = embedScenario(direct);
  const base: LoadOptions = {
    mode: { kind: 'closed', concurrency },
    durationMs: phaseMs,
    maxRequests: 10_000,
    deadlineMs: 30_000,
    keepRecords: true,
  };
  await runLoad(embedLoad.call, { ...base, durationMs: 3_000, keepRecords: false });

  // A. SIGTERM
  progress('A: SIGTERM embed-1 under Embed load (client retries UNAVAILABLE)');
  let termCode: number | null = -1;
  const a = await underLoad(
    () => runLoad(embedLoad.call, { ...base, retry: { maxAttempts: 3, codes: ['UNAVAILABLE'] } }),
    async () => {
      termCode = await c.kill('embed-1', 'SIGTERM');
    },
  );
  runs.push(runReport('A: SIGTERM embed-1', embedLoad, a.result));
  panels.push(...timelinePanels(`A SIGTERM at ${(a.faultStart / 1000).toFixed(1)} s`, a.result, 'slice'));
  const aFailed = a.result.started - (a.result.byCode.OK ?? 0);
  checks.push({
    name: 'A: SIGTERM under load → zero failed calls, replica exits 0',
    pass: aFailed === 0 && termCode === 0,
    detail: `${a.result.started} calls, ${aFailed} failed, ${a.result.retries} retried after UNAVAILABLE; drain took ${((a.faultEnd - a.faultStart) / 1000).toFixed(1)} s; exit code ${String(termCode)}`,
  });
  summary['A retries'] = a.result.retries;
  await c.restartReplica('embed-1');
  summary['A restarted replica served after (ms)'] = Math.round(await untilServedBy(embedLoad.call, a1));

  // B. SIGKILL, no retries
  progress('B: SIGKILL embed-2 under Embed load (no client retries)');
  const b = await underLoad(
    () => runLoad(embedLoad.call, base),
    async () => {
      await c.kill('embed-2', 'SIGKILL');
    },
  );
  runs.push(runReport('B: SIGKILL embed-2', embedLoad, b.result));
  panels.push(...timelinePanels(`B SIGKILL at ${(b.faultStart / 1000).toFixed(1)} s`, b.result, 'slice'));
  const bFailed = (b.result.records ?? []).filter((r) => r.code !== 'OK');
  const onKilled = bFailed.filter(
    (r) => r.peer === a2 && r.startMs <= b.faultEnd + 50 && r.startMs + r.latencyMs >= b.faultStart,
  );
  checks.push({
    name: 'B: SIGKILL → failed calls are UNAVAILABLE only, and only those in flight on the killed replica',
    pass:
      bFailed.every((r) => r.code === 'UNAVAILABLE') &&
      onKilled.length === bFailed.length &&
      bFailed.length <= concurrency,
    detail: `${bFailed.length} failed (${JSON.stringify(b.result.byCode)}); ${onKilled.length} of them on ${a2} and spanning the kill; at most ${concurrency} can be in flight`,
  });
  summary['B failed calls'] = bFailed.length;
  await c.restartReplica('embed-2');
  summary['B restarted replica served after (ms)'] = Math.round(await untilServedBy(embedLoad.call, a2));

  // C. SIGKILL under AnalyzeStudy
  progress('C: SIGKILL embed-1 under AnalyzeStudy load through the gateway');
  const gw = new RawClient(replicaAddress(c, 'gateway'));
  const studies = analyzeScenario(gw);
  await runLoad(studies.call, {
    ...base,
    mode: { kind: 'closed', concurrency: 2 },
    durationMs: 3_000,
    keepRecords: false,
    deadlineMs: 60_000,
  });
  const cr = await underLoad(
    () => runLoad(studies.call, { ...base, mode: { kind: 'closed', concurrency: 2 }, deadlineMs: 60_000 }),
    async () => {
      await c.kill('embed-1', 'SIGKILL');
    },
  );
  runs.push(runReport('C: SIGKILL embed-1 under AnalyzeStudy', studies, cr.result));
  panels.push(...timelinePanels(`C SIGKILL at ${(cr.faultStart / 1000).toFixed(1)} s`, cr.result, 'study'));
  const cFailed = cr.result.started - (cr.result.byCode.OK ?? 0);
  checks.push({
    name: 'C: SIGKILL an Embed replica → every study still completes (gateway retries)',
    pass: cFailed === 0 && (cr.result.byCode.OK ?? 0) > 0,
    detail: `${cr.result.started} studies, ${cFailed} failed ${JSON.stringify(cr.result.byCode)}${cFailed ? `; ${JSON.stringify(cr.result.errorSamples)}` : ''}`,
  });

  // D. Rejoin
  progress('D: restart embed-1; both paths use it again');
  await c.restartReplica('embed-1');
  const d1 = await runLoad(embedLoad.call, { ...base, durationMs: 10_000, keepRecords: false });
  runs.push(runReport('D: direct Embed after restarts', embedLoad, d1));
  const before = await snapshot(replicaTargets(c, 'embed'));
  const d2 = await runLoad(studies.call, {
    ...base,
    mode: { kind: 'closed', concurrency: 2 },
    durationMs: 15_000,
    keepRecords: false,
    deadlineMs: 60_000,
  });
  const after = await snapshot(replicaTargets(c, 'embed'));
  const viaGateway = distribution(before, after, 'Embed');
  runs.push(runReport('D: AnalyzeStudy after restarts', studies, d2, { perReplica: viaGateway }));
  const gwShare = viaGateway.find((x) => x.replica === 'embed-1')?.handled ?? 0;
  checks.push({
    name: 'D: restarted replicas rejoin (direct channel and gateway send them calls)',
    pass:
      (d1.okByPeer[a1] ?? 0) > 0 &&
      (d1.okByPeer[a2] ?? 0) > 0 &&
      gwShare > 0 &&
      Object.keys(d1.byCode).every((k) => k === 'OK') &&
      Object.keys(d2.byCode).every((k) => k === 'OK'),
    detail: `direct: ${JSON.stringify(d1.okByPeer)}; gateway → embed: ${viaGateway.map((x) => `${x.replica} ${x.handled}`).join(', ')}`,
  });
  direct.close();
  gw.close();
} finally {
  exitCodes = await cluster.stop();
}
checks.push({
  name: 'every process (restarted ones included) exits 0 on SIGTERM at the end',
  pass: [...exitCodes.values()].every((x) => x === 0),
  detail: JSON.stringify(Object.fromEntries(exitCodes)),
});
const md = writeReport(args.out, {
  experiment: 'faults',
  title: 'Experiment 4 — SIGTERM and SIGKILL of an Embed replica under load',
  startedAt,
  finishedAt: nowIso(),
  config: {
    phaseMs,
    faultAtMs,
    concurrency,
    embedReplicas: 2,
    CURIA_SHUTDOWN_GRACE_MS: 20_000,
    gatewayTargets: 'static list; restarted replicas come back on the same ports',
  },
  runs,
  checks,
  notes: [
    SHARED_MACHINE_NOTE,
    "The load generator's direct Embed client is a grpc-js channel with round_robin over both replicas; in A it retries UNAVAILABLE (as the platform client does for idempotent methods), in B it does not retry, so every call lost to the crash is visible.",
    'A call counts as "in flight on the killed replica" when its peer is that replica and its lifetime spans the kill.',
  ],
  charts: [{ file: 'faults.png', panels }],
  summary,
});
process.stdout.write(md);
