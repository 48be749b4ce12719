/**
 * Experiment 1 — capacity: open-loop sweeps of offered load for Embed (one replica, 1 slice per
 * stream) and AnalyzeStudy (gateway → preprocess, embed, heads; a 64×64×8 phantom per study,
 * each new to the feature cache); the knee is the last step that is served at the offered rate
 * with p90 within 3× the lightest step's and no errors.
 *
 *     node loadtest/dist/experiments/capacity.js [--quick]
 */
import { ANALYSIS_SERVICES, type LocalCluster } from '@curia/cli';

import { COLORS, type Panel } from '../chart.js';
import { OutputTail, replicaAddress, startCluster } from '../cluster.js';
import { runLoad } from '../generator.js';
import { RawClient } from '../raw-client.js';
import { runReport, writeReport, type Check, type RunReport } from '../report.js';
import { analyzeScenario, embedScenario, type Scenario } from '../scenarios.js';
import { experimentArgs, nowIso, progress, SHARED_MACHINE_NOTE } from './common.js';
import { findKnee, stepServed, type Knee, type Step } from './steps.js';

const args = experimentArgs('capacity');
const startedAt = nowIso();
const stepMs = args.quick ? 6_000 : 15_000;
const embedRates = args.quick ? [2, 6, 12] : [2, 4, 6, 8, 10, 12, 16, 20, 24];
const studyRates = args.quick ? [0.25, 1] : [0.25, 0.5, 1, 1.5, 2, 2.5, 3, 4];
const tail = new OutputTail();
const runs: RunReport[] = [];

async function sweep(
  name: string,
  scenario: Scenario,
  rates: readonly number[],
  deadlineMs: number,
): Promise<Step[]> {
  const steps: Step[] = [];
  for (const rate of rates) {
    progress(`${name}: offered ${rate}/s for ${stepMs / 1000} s`);
    const callsPerSec = scenario.unit === 'slice' ? rate : rate; // one unit per call in both scenarios
    const result = await runLoad(scenario.call, {
      mode: { kind: 'open', ratePerSec: callsPerSec },
      durationMs: stepMs,
      maxRequests: Math.ceil((callsPerSec * stepMs) / 1000) + 1,
      deadlineMs,
      warmupMs: 1_000,
    });
    steps.push({ offered: rate, result });
    runs.push(runReport(`${name} @${rate}/s`, scenario, result));
    progress(
      `  achieved ${result.steadyUnitsPerSec.toFixed(2)}/s (over wall time ${result.unitsPerSec.toFixed(2)}/s), p50 ${result.latency.p50.toFixed(0)} ms, p99 ${result.latency.p99.toFixed(0)} ms, ${JSON.stringify(result.byCode)}`,
    );
    // Past saturation: one more step shows the cliff, further ones only burn time.
    const baselineP90 = steps[0]!.result.latency.p90;
    if (steps.filter((s) => !stepServed(s, baselineP90)).length >= 2) break;
  }
  return steps;
}

async function withCluster<T>(only: string[], fn: (c: LocalCluster) => Promise<T>): Promise<T> {
  const cluster = await startCluster({ only }, tail);
  try {
    return await fn(cluster);
  } finally {
    await cluster.stop();
  }
}

function curvePanels(name: string, unit: string, steps: readonly Step[]): Panel[] {
  return [
    {
      title: `${name}: latency (ms) vs offered ${unit}s/s`,
      xLabel: `offered ${unit}s/s`,
      logY: true,
      series: [
        {
          label: 'p50',
          color: COLORS.blue,
          points: steps.map((s) => [s.offered, s.result.latency.p50] as const),
        },
        {
          label: 'p99',
          color: COLORS.red,
          points: steps.map((s) => [s.offered, s.result.latency.p99] as const),
        },
      ],
    },
    {
      title: `${name}: achieved vs offered (${unit}s/s)`,
      xLabel: `offered ${unit}s/s`,
      series: [
        {
          label: 'achieved',
          color: COLORS.green,
          points: steps.map((s) => [s.offered, s.result.steadyUnitsPerSec] as const),
        },
        { label: 'offered', color: COLORS.grey, points: steps.map((s) => [s.offered, s.offered] as const) },
      ],
    },
  ];
}

const embedSteps = await withCluster(['embed'], async (c) => {
  const client = new RawClient(replicaAddress(c, 'embed'));
  try {
    const scenario = embedScenario(client);
    await runLoad(scenario.call, {
      mode: { kind: 'closed', concurrency: 2 },
      durationMs: 3_000,
      maxRequests: 50,
      deadlineMs: 30_000,
    });
    return await sweep('Embed', scenario, embedRates, 30_000);
  } finally {
    client.close();
  }
});
const studySteps = await withCluster([...ANALYSIS_SERVICES], async (c) => {
  const client = new RawClient(replicaAddress(c, 'gateway'));
  try {
    const scenario = analyzeScenario(client);
    await runLoad(scenario.call, {
      mode: { kind: 'closed', concurrency: 1 },
      durationMs: 3_000,
      maxRequests: 5,
      deadlineMs: 60_000,
    });
    return await sweep('AnalyzeStudy', scenario, studyRates, 60_000);
  } finally {
    client.close();
  }
});

const embedKnee = findKnee(embedSteps);
const studyKnee = findKnee(studySteps);
const kneeCheck = (name: string, k: Knee): Check => ({
  name: `${name}: a knee exists within the sweep`,
  pass:
    Number.isFinite(k.kneeOffered) &&
    k.maxAchieved < 0.95 * Math.max(...(name === 'Embed' ? embedRates : studyRates)),
  detail: `knee at ${k.kneeOffered}/s offered (${k.kneeAchieved.toFixed(2)}/s achieved); max achieved ${k.maxAchieved.toFixed(2)}/s; baseline p90 ${k.baselineP90.toFixed(0)} ms`,
});
const md = writeReport(args.out, {
  experiment: 'capacity',
  title: 'Experiment 1 — capacity: latency vs offered load for Embed and AnalyzeStudy',
  startedAt,
  finishedAt: nowIso(),
  config: {
    stepMs,
    embedRates,
    studyRates,
    embed:
      'one replica, default settings (max batch 8, queue 64 slices), 1 slice (512×512 F32) per Embed stream, CLS output',
    analyzeStudy:
      'gateway + preprocess + embed + heads, one replica each; streamed 64×64×8 int16 NIfTI, CLS embeddings of every slice, no heads; every study distinct (cache misses)',
    deadlinesMs: { embed: 30_000, analyzeStudy: 60_000 },
  },
  runs,
  checks: [kneeCheck('Embed', embedKnee), kneeCheck('AnalyzeStudy', studyKnee)],
  notes: [
    SHARED_MACHINE_NOTE,
    'Open loop: calls start on schedule whatever the latency and latency is measured from the scheduled start, so queueing beyond the knee shows as latency, then as missed throughput.',
    "The knee is the last step served: every arrival launched and every call OK, p90 ≤ 3× the lightest step's p90 (judged per call, not as a rate over a window, which clips calls at light load). Experiment 2 offers 3× the Embed capacity (max achieved).",
  ],
  charts: [
    { file: 'embed-capacity.png', panels: curvePanels('Embed', 'slice', embedSteps) },
    { file: 'analyze-capacity.png', panels: curvePanels('AnalyzeStudy', 'study', studySteps) },
  ],
  summary: {
    'Embed knee (offered slices/s)': embedKnee.kneeOffered,
    'Embed capacity (max achieved slices/s)': embedKnee.maxAchieved,
    'AnalyzeStudy knee (offered studies/s)': studyKnee.kneeOffered,
    'AnalyzeStudy capacity (max achieved studies/s)': studyKnee.maxAchieved,
  },
});
process.stdout.write(md);
