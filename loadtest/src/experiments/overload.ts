/**
 * Experiment 2 — overload at 3× capacity, open loop, for Embed (one replica, default queue),
 * AnalyzeStudy (gateway, default CURIA_GATEWAY_MAX_STUDIES) and Segment (click prompts, default
 * CURIA_SEGMENT_MAX_CONCURRENT): admitted calls keep bounded latency, the rest get
 * RESOURCE_EXHAUSTED (with retry-after-ms) quickly, RSS stays bounded, nothing crashes, goodput
 * does not collapse.
 *
 *     node loadtest/dist/experiments/overload.js [--quick]
 */
import { ANALYSIS_SERVICES, type LocalCluster } from '@curia/cli';

import { OutputTail, replicaAddress, replicaTargets, startCluster } from '../cluster.js';
import { runLoad, type LoadResult } from '../generator.js';
import { RawClient } from '../raw-client.js';
import { ResourceSampler, type ResourcePoint } from '../replicas.js';
import {
  memoryPanel,
  runReport,
  timelinePanels,
  writeReport,
  type ChartSpec,
  type Check,
  type RunReport,
} from '../report.js';
import { analyzeScenario, embedScenario, mixScenario, segmentScenario, type Scenario } from '../scenarios.js';
import { capacityFromReport } from './capacity-input.js';
import { experimentArgs, nowIso, progress, SHARED_MACHINE_NOTE } from './common.js';

const args = experimentArgs('overload');
const startedAt = nowIso();
const overloadMs = args.quick ? 10_000 : 30_000;
const tail = new OutputTail();
const runs: RunReport[] = [];
const checks: Check[] = [];
const charts: ChartSpec[] = [];
const summary: Record<string, unknown> = {};

interface Case {
  readonly name: string;
  readonly only: string[];
  readonly entry: string;
  readonly watched: string[];
  readonly capacityKey: string;
  readonly deadlineMs: number;
  readonly make: (client: RawClient) => Scenario;
  readonly probeConcurrency: number;
}

const cases: Case[] = [
  {
    name: 'Embed',
    only: ['embed'],
    entry: 'embed',
    watched: ['embed'],
    capacityKey: 'Embed capacity (max achieved slices/s)',
    deadlineMs: 30_000,
    make: (c) => embedScenario(c),
    probeConcurrency: 8,
  },
  {
    name: 'AnalyzeStudy',
    only: [...ANALYSIS_SERVICES],
    entry: 'gateway',
    watched: ['gateway', 'embed', 'preprocess'],
    capacityKey: 'AnalyzeStudy capacity (max achieved studies/s)',
    deadlineMs: 60_000,
    make: (c) => analyzeScenario(c),
    probeConcurrency: 4,
  },
  {
    // Experiment 1 has no Segment sweep: the capacity is the closed-loop probe's at the admission limit.
    name: 'Segment',
    only: ['preprocess', 'embed', 'segment'],
    entry: 'segment',
    watched: ['segment', 'embed', 'preprocess'],
    capacityKey: 'Segment capacity (max achieved studies/s)',
    deadlineMs: 60_000,
    make: (c) => segmentScenario(c),
    probeConcurrency: 4,
  },
];

function maxOver(xs: readonly number[]): number {
  const f = xs.filter(Number.isFinite);
  return f.length ? Math.max(...f) : Number.NaN;
}

function thirds<T>(xs: readonly T[]): [T[], T[], T[]] {
  const n = Math.floor(xs.length / 3);
  return [xs.slice(0, n), xs.slice(n, 2 * n), xs.slice(2 * n)];
}

function judge(
  c: Case,
  capacity: number,
  r: LoadResult,
  mem: Record<string, ResourcePoint[]>,
  exitCodes: Map<string, number | null>,
): void {
  const shed = r.byCode.RESOURCE_EXHAUSTED ?? 0;
  const unexpected = Object.keys(r.byCode).filter((k) => k !== 'OK' && k !== 'RESOURCE_EXHAUSTED');
  checks.push({
    name: `${c.name}: excess load is shed with RESOURCE_EXHAUSTED + retry-after-ms`,
    pass: shed > 0 && r.shedWithRetryAfter === shed,
    detail: `${shed} of ${r.started} calls shed, ${r.shedWithRetryAfter} with the trailer`,
  });
  checks.push({
    name: `${c.name}: no status other than OK and RESOURCE_EXHAUSTED, no call past its deadline`,
    pass: unexpected.length === 0 && r.hung === 0 && r.overdue === 0,
    detail: `statuses ${JSON.stringify(r.byCode)}, hung ${r.hung}, overdue ${r.overdue}${unexpected.length ? `; first message: ${unexpected.map((u) => r.errorSamples[u]).join(' / ')}` : ''}`,
  });
  const shedP99 = r.latencyByCode.RESOURCE_EXHAUSTED?.p99 ?? Number.NaN;
  checks.push({
    name: `${c.name}: shed calls are answered quickly (p99 < 1 s)`,
    pass: shedP99 < 1_000,
    detail: `RESOURCE_EXHAUSTED p50 ${(r.latencyByCode.RESOURCE_EXHAUSTED?.p50 ?? Number.NaN).toFixed(0)} ms, p99 ${shedP99.toFixed(0)} ms; admitted p50 ${r.latency.p50.toFixed(0)} ms`,
  });
  const [, mid, last] = thirds(r.timeline.filter((b) => b.t * 1000 < overloadMs));
  const midP99 = maxOver(mid.map((b) => b.p99));
  const lastP99 = maxOver(last.map((b) => b.p99));
  checks.push({
    name: `${c.name}: admitted latency is bounded (does not grow during the overload)`,
    pass: r.latency.max < c.deadlineMs && lastP99 <= 1.5 * midP99,
    detail: `p99 per 1-s bin: max ${midP99.toFixed(0)} ms in the middle third, ${lastP99.toFixed(0)} ms in the last third; overall p99 ${r.latency.p99.toFixed(0)} ms, max ${r.latency.max.toFixed(0)} ms (deadline ${c.deadlineMs} ms)`,
  });
  checks.push({
    name: `${c.name}: goodput does not collapse (≥ 80% of capacity)`,
    pass: r.steadyUnitsPerSec >= 0.8 * capacity,
    detail: `${r.steadyUnitsPerSec.toFixed(2)} ${c.name === 'Embed' ? 'slices' : 'studies'}/s OK at 3× offered vs capacity ${capacity.toFixed(2)}/s (${((100 * r.steadyUnitsPerSec) / capacity).toFixed(0)}%)`,
  });
  const memRows = Object.entries(mem).map(([replica, pts]) => {
    const rss = pts.map((p) => p.rssBytes / 2 ** 20);
    const [, m, l] = thirds(rss);
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    return { replica, first: rss[0] ?? Number.NaN, max: maxOver(rss), mid: mean(m), last: mean(l) };
  });
  checks.push({
    name: `${c.name}: memory bounded (RSS growth < 400 MiB, last third ≤ middle third + 10% + 50 MiB)`,
    pass: memRows.length > 0 && memRows.every((m) => m.max - m.first < 400 && m.last <= 1.1 * m.mid + 50),
    detail: memRows
      .map(
        (m) =>
          `${m.replica} ${m.first.toFixed(0)}→max ${m.max.toFixed(0)} MiB (mid ${m.mid.toFixed(0)}, last ${m.last.toFixed(0)})`,
      )
      .join('; '),
  });
  checks.push({
    name: `${c.name}: nothing crashed; every process exits 0 on SIGTERM afterwards`,
    pass: [...exitCodes.values()].every((x) => x === 0),
    detail: JSON.stringify(Object.fromEntries(exitCodes)),
  });
}

for (const c of cases) {
  const cluster: LocalCluster = await startCluster({ only: c.only }, tail);
  let exitCodes = new Map<string, number | null>();
  let result: LoadResult | null = null;
  let capacity = Number.NaN;
  let mem: Record<string, ResourcePoint[]> = {};
  try {
    const client = new RawClient(replicaAddress(cluster, c.entry));
    const scenario = c.make(client);
    const probe = await runLoad(scenario.call, {
      mode: { kind: 'closed', concurrency: c.probeConcurrency },
      durationMs: args.quick ? 5_000 : 10_000,
      maxRequests: 2_000,
      deadlineMs: c.deadlineMs,
      warmupMs: 2_000,
    });
    runs.push(runReport(`${c.name} capacity probe`, scenario, probe));
    capacity = capacityFromReport(c.capacityKey) ?? probe.unitsPerSec;
    summary[`${c.name} capacity used (units/s)`] = capacity;
    summary[`${c.name} closed-loop probe now (units/s)`] = probe.unitsPerSec;
    const rate = 3 * capacity;
    progress(
      `${c.name}: capacity ${capacity.toFixed(2)}/s → offering ${rate.toFixed(2)}/s for ${overloadMs / 1000} s`,
    );
    const sampler = new ResourceSampler(
      c.watched.flatMap((s) => replicaTargets(cluster, s)),
      1_000,
    ).start();
    result = await runLoad(scenario.call, {
      mode: { kind: 'open', ratePerSec: rate },
      durationMs: overloadMs,
      maxRequests: Math.ceil((rate * overloadMs) / 1000) + 1,
      deadlineMs: c.deadlineMs,
      warmupMs: 2_000,
    });
    mem = await sampler.stop();
    runs.push(runReport(`${c.name} at 3× capacity`, scenario, result, { resources: mem }));
    if (c.name === 'AnalyzeStudy') {
      // After the overload: a mixed closed-loop workload (direct Embed streams and studies) on the
      // same cluster, to show the platform back to normal service with both kinds of traffic.
      const direct = new RawClient(replicaAddress(cluster, 'embed'));
      const mix = mixScenario([
        { scenario: embedScenario(direct), weight: 4 },
        { scenario, weight: 1 },
      ]);
      const mixed = await runLoad(mix.call, {
        mode: { kind: 'closed', concurrency: 4 },
        durationMs: args.quick ? 5_000 : 15_000,
        maxRequests: 5_000,
        deadlineMs: c.deadlineMs,
      });
      direct.close();
      runs.push(runReport('mix after the overload', mix, mixed));
      checks.push({
        name: 'mix (Embed 4 : AnalyzeStudy 1) after the overload: every call OK',
        pass: Object.keys(mixed.byCode).every((k) => k === 'OK') && mixed.started > 0,
        detail: `${JSON.stringify(mixed.byCode)}, ${mixed.okPerSec.toFixed(2)} calls/s, p50 ${mixed.latency.p50.toFixed(0)} ms, p99 ${mixed.latency.p99.toFixed(0)} ms`,
      });
    }
    client.close();
    summary[`${c.name} goodput at 3× (units/s)`] = result.steadyUnitsPerSec;
    charts.push({
      file: `${c.name.toLowerCase()}-overload.png`,
      panels: [
        ...timelinePanels(`${c.name} at 3×`, result, scenario.unit),
        memoryPanel(`${c.name} at 3×`, mem),
      ],
    });
  } finally {
    exitCodes = await cluster.stop();
  }
  if (result) judge(c, capacity, result, mem, exitCodes);
}

const md = writeReport(args.out, {
  experiment: 'overload',
  title: 'Experiment 2 — overload at 3× capacity (Embed, AnalyzeStudy and Segment)',
  startedAt,
  finishedAt: nowIso(),
  config: {
    overloadMs,
    embed: 'one replica, default CURIA_EMBED_MAX_QUEUE_SLICES (64), MAX_BATCH (8); 1 slice per stream',
    analyzeStudy:
      'gateway (default CURIA_GATEWAY_MAX_STUDIES 8) + preprocess + embed + heads; 64×64×8 phantom studies, all distinct',
    segment:
      'segment (default CURIA_SEGMENT_MAX_CONCURRENT 4) + preprocess + embed; click at the centre of 64×64×8 phantom studies, all distinct, no NIfTI mask returned',
    capacitySource:
      'experiment 1 report (loadtest/results/capacity/report.json) when present, else the closed-loop probe',
  },
  runs,
  checks,
  notes: [
    SHARED_MACHINE_NOTE,
    'Open loop at 3× the capacity of experiment 1; latency measured from the scheduled start. Admitted calls wait at most one full queue (CURIA_EMBED_MAX_QUEUE_SLICES / throughput), which is what "bounded" means here; the bound is checked as "no growth" between the middle and the last third of the run.',
  ],
  charts,
  summary,
});
process.stdout.write(md);
