/**
 * Experiment 1 — capacity: open-loop sweeps of offered load for Embed (one replica, 1 slice per
 * stream) and AnalyzeStudy (gateway → preprocess, embed, heads; a 64×64×8 phantom per study,
 * each new to the feature cache); the knee is the last step that is served at the offered rate
 * with p90 within 3× the lightest step's and no errors.
 *
 *     node loadtest/dist/experiments/capacity.js [--quick]
 */
import { ANALYSIS_SERVICES } from '@curia/cli';

import { OutputTail, replicaAddress, withCluster } from '../cluster.js';
import { RawClient } from '../raw-client.js';
import { writeReport, type Check, type RunReport } from '../report.js';
import { analyzeScenario, embedScenario } from '../scenarios.js';
import { experimentArgs, nowIso, SHARED_MACHINE_NOTE } from './common.js';
import { findKnee, type Knee } from './steps.js';
import { capacitySweeps, curvePanels, sweep, warmUp } from './sweep.js';

const args = experimentArgs('capacity');
const startedAt = nowIso();
const { stepMs, embed, study } = capacitySweeps(args.quick);
const embedRates = embed.rates;
const studyRates = study.rates;
const tail = new OutputTail();
const runs: RunReport[] = [];

const embedSteps = await withCluster({ only: ['embed'] }, tail, async (c) => {
  const client = new RawClient(replicaAddress(c, 'embed'));
  try {
    const scenario = embedScenario(client);
    await warmUp(scenario, embed);
    return await sweep('Embed', scenario, embed, { stepMs, runs });
  } finally {
    client.close();
  }
});
const studySteps = await withCluster({ only: [...ANALYSIS_SERVICES] }, tail, async (c) => {
  const client = new RawClient(replicaAddress(c, 'gateway'));
  try {
    const scenario = analyzeScenario(client);
    await warmUp(scenario, study);
    return await sweep('AnalyzeStudy', scenario, study, { stepMs, runs });
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
    deadlinesMs: { embed: embed.deadlineMs, analyzeStudy: study.deadlineMs },
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
