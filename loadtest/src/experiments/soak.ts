/**
 * Experiment 5 — soak (not in CI): Embed at 70% of capacity, open loop, for 10 minutes (by
 * default), sampling RSS and heap of the replica every 5 s; passes when both are stable (the
 * last fifth's mean within 10% + 30 MiB of the second fifth's) and no call failed.
 *
 *     node loadtest/dist/experiments/soak.js [--quick]   # --quick: 1 minute
 */
import { OutputTail, replicaAddress, replicaTargets, startCluster } from '../cluster.js';
import { runLoad } from '../generator.js';
import { RawClient } from '../raw-client.js';
import { ResourceSampler, type ResourcePoint } from '../replicas.js';
import { memoryPanel, runReport, timelinePanels, writeReport, type Check } from '../report.js';
import { embedScenario } from '../scenarios.js';
import { capacityFromReport } from './capacity-input.js';
import { experimentArgs, nowIso, progress, SHARED_MACHINE_NOTE } from './common.js';

const args = experimentArgs('soak');
const startedAt = nowIso();
const soakMs = args.quick ? 60_000 : 600_000;
const tail = new OutputTail();
const cluster = await startCluster({ only: ['embed'] }, tail);
let exitCodes = new Map<string, number | null>();
const checks: Check[] = [];
let report: Parameters<typeof writeReport>[1] | null = null;
try {
  const client = new RawClient(replicaAddress(cluster, 'embed'));
  const scenario = embedScenario(client);
  const probe = await runLoad(scenario.call, {
    mode: { kind: 'closed', concurrency: 8 },
    durationMs: 10_000,
    maxRequests: 2_000,
    deadlineMs: 30_000,
    warmupMs: 2_000,
  });
  const capacity = capacityFromReport('Embed capacity (max achieved slices/s)') ?? probe.unitsPerSec;
  const rate = 0.7 * capacity;
  progress(`soak: ${rate.toFixed(2)} slices/s for ${soakMs / 1000} s`);
  const sampler = new ResourceSampler(replicaTargets(cluster, 'embed'), 5_000).start();
  const result = await runLoad(scenario.call, {
    mode: { kind: 'open', ratePerSec: rate },
    durationMs: soakMs,
    maxRequests: Math.ceil((rate * soakMs) / 1000) + 1,
    deadlineMs: 30_000,
    binMs: 10_000,
  });
  const mem: Record<string, ResourcePoint[]> = await sampler.stop();
  client.close();
  const pts = mem.embed ?? [];
  const fifth = Math.floor(pts.length / 5);
  const mean = (xs: readonly ResourcePoint[], k: 'rssBytes' | 'heapUsedBytes'): number =>
    xs.reduce((s, p) => s + p[k], 0) / Math.max(1, xs.length) / 2 ** 20;
  const second = pts.slice(fifth, 2 * fifth);
  const last = pts.slice(4 * fifth);
  for (const k of ['rssBytes', 'heapUsedBytes'] as const) {
    const [m2, m5] = [mean(second, k), mean(last, k)];
    checks.push({
      name: `${k === 'rssBytes' ? 'RSS' : 'heap used'} stable`,
      pass: pts.length >= 5 && m5 <= 1.1 * m2 + 30,
      detail: `${m2.toFixed(0)} MiB (2nd fifth) → ${m5.toFixed(0)} MiB (last fifth)`,
    });
  }
  checks.push({
    name: 'no failed call',
    pass: Object.keys(result.byCode).every((k) => k === 'OK'),
    detail: JSON.stringify(result.byCode),
  });
  report = {
    experiment: 'soak',
    title: 'Experiment 5 — soak at 70% of Embed capacity',
    startedAt,
    finishedAt: nowIso(),
    config: { soakMs, rate, capacity },
    runs: [runReport('soak', scenario, result, { resources: mem })],
    checks,
    notes: [SHARED_MACHINE_NOTE],
    charts: [
      { file: 'soak.png', panels: [...timelinePanels('soak', result, 'slice'), memoryPanel('soak', mem)] },
    ],
    summary: { 'offered slices/s': rate, 'achieved slices/s': result.steadyUnitsPerSec },
  };
} finally {
  exitCodes = await cluster.stop();
}
if (report) {
  const codes = JSON.stringify(Object.fromEntries(exitCodes));
  const md = writeReport(args.out, {
    ...report,
    checks: [
      ...report.checks,
      { name: 'replica exits 0', pass: [...exitCodes.values()].every((x) => x === 0), detail: codes },
    ],
  });
  process.stdout.write(md);
}
