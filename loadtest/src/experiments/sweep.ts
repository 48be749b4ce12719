import type { LocalCluster } from '@curia/cli';

import { COLORS, type Panel, type Rgb } from '../chart.js';
import { replicaTargets } from '../cluster.js';
import { runLoad } from '../generator.js';
import { scrape, sumSamples } from '../prometheus.js';
import { runReport, type RunReport } from '../report.js';
import type { Scenario } from '../scenarios.js';
import { progress } from './common.js';
import { cpuMsPerCall, stepServed, type Knee, type Step } from './steps.js';

/** One scenario's open-loop sweep: its rates, deadline and closed-loop warm-up. */
export interface SweepSpec {
  readonly rates: readonly number[];
  readonly deadlineMs: number;
  /** Closed-loop warm-up before the sweep (3 s, at most `maxRequests` calls). */
  readonly warmup: { readonly concurrency: number; readonly maxRequests: number };
}

/** The capacity experiment's sweeps (also what the security experiment repeats per configuration). */
export function capacitySweeps(quick: boolean): {
  stepMs: number;
  embed: SweepSpec;
  study: SweepSpec;
} {
  return {
    stepMs: quick ? 6_000 : 15_000,
    embed: {
      rates: quick ? [2, 6, 12] : [2, 4, 6, 8, 10, 12, 16, 20, 24],
      deadlineMs: 30_000,
      warmup: { concurrency: 2, maxRequests: 50 },
    },
    study: {
      rates: quick ? [0.25, 1] : [0.25, 0.5, 1, 1.5, 2, 2.5, 3, 4],
      deadlineMs: 60_000,
      warmup: { concurrency: 1, maxRequests: 5 },
    },
  };
}

/** Options of {@link sweep}. */
export interface SweepOptions {
  readonly stepMs: number;
  /** Each step's run report is appended here. */
  readonly runs: RunReport[];
  /** Cumulative CPU seconds of the services under test; when given, each step records its delta. */
  readonly serviceCpuSeconds?: () => Promise<number>;
}

/** Closed-loop warm-up (connections, JIT, model) before a sweep; its results are discarded. */
export async function warmUp(scenario: Scenario, spec: SweepSpec): Promise<void> {
  await runLoad(scenario.call, {
    mode: { kind: 'closed', concurrency: spec.warmup.concurrency },
    durationMs: 3_000,
    maxRequests: spec.warmup.maxRequests,
    deadlineMs: spec.deadlineMs,
  });
}

const generatorCpuSeconds = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/**
 * Open-loop steps of increasing offered rate (one unit per call), stopping one step past the
 * second unserved one: past saturation one more step shows the cliff, further ones only burn time.
 */
export async function sweep(
  name: string,
  scenario: Scenario,
  spec: SweepSpec,
  options: SweepOptions,
): Promise<Step[]> {
  const steps: Step[] = [];
  for (const rate of spec.rates) {
    progress(`${name}: offered ${rate}/s for ${options.stepMs / 1000} s`);
    const cpu0 = await options.serviceCpuSeconds?.();
    const gen0 = generatorCpuSeconds();
    const result = await runLoad(scenario.call, {
      mode: { kind: 'open', ratePerSec: rate },
      durationMs: options.stepMs,
      maxRequests: Math.ceil((rate * options.stepMs) / 1000) + 1,
      deadlineMs: spec.deadlineMs,
      warmupMs: 1_000,
    });
    const generator = generatorCpuSeconds() - gen0;
    const cpu1 = await options.serviceCpuSeconds?.();
    const cpu = cpu0 === undefined || cpu1 === undefined ? undefined : { services: cpu1 - cpu0, generator };
    steps.push({ offered: rate, result, ...(cpu ? { cpu } : {}) });
    options.runs.push(runReport(`${name} @${rate}/s`, scenario, result));
    progress(
      `  achieved ${result.steadyUnitsPerSec.toFixed(2)}/s (over wall time ${result.unitsPerSec.toFixed(2)}/s), p50 ${result.latency.p50.toFixed(0)} ms, p99 ${result.latency.p99.toFixed(0)} ms, ${JSON.stringify(result.byCode)}${cpu ? `, CPU services ${cpu.services.toFixed(1)} s, generator ${cpu.generator.toFixed(1)} s` : ''}`,
    );
    const baselineP90 = steps[0]!.result.latency.p90;
    if (steps.filter((s) => !stepServed(s, baselineP90)).length >= 2) break;
  }
  return steps;
}

/** Cumulative process CPU seconds of every service of the cluster (their /metrics, plaintext HTTP). */
export function clusterCpuSeconds(cluster: LocalCluster, services: readonly string[]): () => Promise<number> {
  const targets = services.flatMap((s) => replicaTargets(cluster, s));
  return async () => {
    const pages = await Promise.all(targets.map((t) => scrape(t.metricsUrl)));
    return pages.reduce((sum, p) => sum + (p ? sumSamples(p, 'process_cpu_seconds_total') : Number.NaN), 0);
  };
}

/** A sweep's headline figures: knee, max achieved, latency at a light step, CPU per call at a common rate. */
export interface SweepRow {
  readonly run: string;
  readonly kneeOffered: number;
  readonly maxAchieved: number;
  readonly lightP50: number;
  readonly lightP99: number;
  readonly serviceCpuMsPerCall: number;
  readonly generatorCpuMsPerCall: number;
}

/** {@link SweepRow} of one sweep; `light` and `common` are offered rates (latency, CPU per call). */
export function sweepRow(
  run: string,
  steps: readonly Step[],
  knee: Knee,
  light: number,
  common: number,
): SweepRow {
  const lightStep = steps.find((x) => x.offered === light);
  const cpu = cpuMsPerCall(steps.find((x) => x.offered === common));
  return {
    run,
    kneeOffered: knee.kneeOffered,
    maxAchieved: knee.maxAchieved,
    lightP50: lightStep?.result.latency.p50 ?? Number.NaN,
    lightP99: lightStep?.result.latency.p99 ?? Number.NaN,
    serviceCpuMsPerCall: cpu?.services ?? Number.NaN,
    generatorCpuMsPerCall: cpu?.generator ?? Number.NaN,
  };
}

/** Two decimals, `n/a` when not finite. */
export const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');

/** A Markdown table of {@link SweepRow}s (the report renderer has no place for it). */
export function sweepTable(
  title: string,
  unit: string,
  light: number,
  common: number,
  rows: readonly SweepRow[],
): string {
  return [
    `### ${title}`,
    '',
    `Knee and max achieved in ${unit}/s; latency (ms) at the common light step ${light} ${unit}/s; CPU ms per OK call at ${common} ${unit}/s, the highest rate every run served.`,
    '',
    '| run | knee (offered/s) | max achieved (/s) | p50 | p99 | services CPU-ms/call | generator CPU-ms/call |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.run} | ${f2(r.kneeOffered)} | ${f2(r.maxAchieved)} | ${f2(r.lightP50)} | ${f2(r.lightP99)} | ${f2(r.serviceCpuMsPerCall)} | ${f2(r.generatorCpuMsPerCall)} |`,
    ),
    '',
  ].join('\n');
}

/** Latency (p50, p99) and achieved-vs-offered panels of one sweep. */
export function curvePanels(name: string, unit: string, steps: readonly Step[]): Panel[] {
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

const SERIES_COLORS: readonly Rgb[] = [COLORS.blue, COLORS.red, COLORS.green, COLORS.orange, COLORS.purple];

/** Achieved-vs-offered and p99 panels comparing several sweeps of one scenario (one line each). */
export function comparePanels(
  name: string,
  unit: string,
  sweeps: readonly { readonly legend: string; readonly steps: readonly Step[] }[],
): Panel[] {
  const series = (pick: (s: Step) => number) =>
    sweeps.map((s, i) => ({
      label: s.legend,
      color: SERIES_COLORS[i % SERIES_COLORS.length]!,
      points: s.steps.map((x) => [x.offered, pick(x)] as const),
    }));
  const offered = [...new Set(sweeps.flatMap((s) => s.steps.map((x) => x.offered)))].sort((a, b) => a - b);
  return [
    {
      title: `${name}: achieved/s`,
      xLabel: `offered ${unit}/s`,
      series: [
        ...series((x) => x.result.steadyUnitsPerSec),
        { label: 'offered', color: COLORS.grey, points: offered.map((r) => [r, r] as const) },
      ],
    },
    {
      title: `${name}: p99 ms`,
      xLabel: `offered ${unit}/s`,
      logY: true,
      series: series((x) => x.result.latency.p99),
    },
  ];
}
