/**
 * Experiment 8 — int8: the capacity knee of Embed with an INT8 bundle next to its F32 source
 * (issue 19). Builds the demo preset's F32 bundle and its INT8 derivative (`curia model build
 * --random --preset demo [--quantize int8]`) into a temp directory, starts ONE Embed replica
 * serving both (`CURIA_EMBED_MODELS=f32,int8`; `start.model` picks, batches never mix bundles) and
 * runs the capacity experiment's open-loop Embed sweep per model, whole sweeps alternating
 * F32 → INT8 → F32 → INT8 so the shared machine's drift shows in the two runs of each. Then, since
 * a curia-b sweep at ~0.5 slices/s would take hours, curia-b F32 vs INT8 in closed loop at a
 * batch-friendly fixed concurrency, alternating the same way.
 *
 *     node loadtest/dist/experiments/int8.js [--quick]
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { repoRoot, type LocalCluster } from '@curia/cli';

import { COLORS } from '../chart.js';
import { OutputTail, replicaAddress, withCluster } from '../cluster.js';
import { runLoad, type LoadResult } from '../generator.js';
import { RawClient } from '../raw-client.js';
import { runReport, writeReport, type Check, type RunReport } from '../report.js';
import { embedScenario, type Scenario } from '../scenarios.js';
import { experimentArgs, nowIso, progress, SHARED_MACHINE_NOTE } from './common.js';
import { commonServedRate, findKnee, ratioTo, type Knee, type Ratio, type Step } from './steps.js';
import {
  capacitySweeps,
  clusterCpuSeconds,
  comparePanels,
  f2,
  sweep,
  sweepRow,
  sweepTable,
  warmUp,
  type SweepRow,
  type SweepSpec,
} from './sweep.js';

const args = experimentArgs('int8');
const startedAt = nowIso();
const capacity = capacitySweeps(args.quick);
const stepMs = capacity.stepMs;
/** Experiment 1's Embed rates, plus headroom in case INT8 serves past the top one. */
const embed: SweepSpec = {
  ...capacity.embed,
  rates: args.quick ? capacity.embed.rates : [...capacity.embed.rates, 32, 40],
};
/** The light step where latency is compared (as in the security experiment). */
const LIGHT = args.quick ? 6 : 4;
/** curia-b closed loop: batch-friendly concurrency (the service's default max batch is 8). */
const CURIA_B = {
  concurrency: 8,
  durationMs: args.quick ? 20_000 : 60_000,
  warmupMs: args.quick ? 5_000 : 15_000,
  deadlineMs: 300_000,
};
const tail = new OutputTail();
const runs: RunReport[] = [];
const exec = promisify(execFile);

type Precision = 'f32' | 'int8';
const LABEL: Record<Precision, string> = { f32: 'F32', int8: 'INT8' };
/** Whole runs alternate precisions so drift hits both. */
const ORDER: readonly Precision[] = ['f32', 'int8', 'f32', 'int8'];

/** The parts of `bundle.json` this experiment reports. */
interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly model_bytes: number;
  readonly quantization?: {
    readonly fidelity: {
      readonly cls_cosine_min: number;
      readonly patch_cosine_mean: number;
      readonly max_abs_diff: number;
      readonly host_int8_features: readonly string[] | null;
    };
  };
}
interface Bundle {
  readonly dir: string;
  /** `name@version`, what `start.model` names. */
  readonly model: string;
  readonly manifest: Manifest;
  readonly buildSeconds: number;
}
type Pair = Record<Precision, Bundle>;

/** Builds a random-weight bundle of `preset` with the `curia` CLI (seed 0, so INT8 derives from the same F32 weights). */
async function buildBundle(preset: string, precision: Precision, dir: string): Promise<Bundle> {
  const cli = join(repoRoot(), 'libs', 'cli', 'bin', 'curia.js');
  const quantize = precision === 'int8' ? ['--quantize', 'int8'] : [];
  const t0 = performance.now();
  const { stdout } = await exec(
    process.execPath,
    [cli, 'model', 'build', '--random', '--preset', preset, ...quantize, '--out', dir],
    { maxBuffer: 1 << 20 },
  );
  const buildSeconds = (performance.now() - t0) / 1000;
  progress(`  ${stdout.trim().replace(/\n/g, '\n  ')}`);
  const manifest = JSON.parse(readFileSync(join(dir, 'bundle.json'), 'utf8')) as Manifest;
  return { dir, model: `${manifest.name}@${manifest.version}`, manifest, buildSeconds };
}

async function buildPair(preset: string): Promise<Pair> {
  progress(`building ${preset} F32 and INT8 bundles`);
  return {
    f32: await buildBundle(preset, 'f32', join(work, `${preset}-f32`)),
    int8: await buildBundle(preset, 'int8', join(work, `${preset}-int8`)),
  };
}

/** One Embed replica serving both bundles of `pair` (F32 the default). */
function servingBoth<T>(pair: Pair, fn: (cluster: LocalCluster) => Promise<T>): Promise<T> {
  return withCluster(
    { only: ['embed'], serviceEnv: { embed: { CURIA_EMBED_MODELS: `${pair.f32.dir},${pair.int8.dir}` } } },
    tail,
    fn,
  );
}

/** One model's open-loop sweep. */
interface SweepRun {
  readonly label: string;
  readonly legend: string;
  readonly precision: Precision;
  readonly steps: Step[];
  readonly knee: Knee;
}

/** One model's closed-loop run (curia-b). */
interface ClosedRun {
  readonly label: string;
  readonly precision: Precision;
  readonly result: LoadResult;
  readonly serviceCpuMsPerSlice: number;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** INT8 ÷ F32: ratio of the runs' means, range the extreme pairings (the spread noise allows). */
function int8Ratio(f32: readonly number[], int8: readonly number[]): Ratio {
  const ok = int8.filter(Number.isFinite);
  if (!ok.length) return ratioTo(f32, Number.NaN);
  return {
    ratio: ratioTo(f32, mean(ok)).ratio,
    low: ratioTo(f32, Math.min(...ok)).low,
    high: ratioTo(f32, Math.max(...ok)).high,
  };
}
const fmtRatio = (r: Ratio): string => `${f2(r.ratio)} (${f2(r.low)}–${f2(r.high)})`;

const work = mkdtempSync(join(tmpdir(), 'curia-loadtest-int8-'));
let demo: Pair;
let demoSweeps: SweepRun[];
let curiaB: { pair: Pair; runs: ClosedRun[] };
try {
  demo = await buildPair('demo');
  demoSweeps = await servingBoth(demo, async (c) => {
    const client = new RawClient(replicaAddress(c, 'embed'));
    try {
      const scenarios: Record<Precision, Scenario> = {
        f32: embedScenario(client, { model: demo.f32.model }),
        int8: embedScenario(client, { model: demo.int8.model }),
      };
      const out: SweepRun[] = [];
      for (const [i, p] of ORDER.entries()) {
        const n = ORDER.slice(0, i + 1).filter((x) => x === p).length;
        const label = `Embed ${LABEL[p]} #${n}`;
        await warmUp(scenarios[p], embed);
        const steps = await sweep(label, scenarios[p], embed, {
          stepMs,
          runs,
          serviceCpuSeconds: clusterCpuSeconds(c, ['embed']),
        });
        out.push({ label, legend: `${LABEL[p]} ${n}`, precision: p, steps, knee: findKnee(steps) });
      }
      return out;
    } catch (e) {
      progress(`demo sweeps failed; recent service output:\n${tail.text()}`);
      throw e;
    } finally {
      client.close();
    }
  });

  const pair = await buildPair('curia-b');
  const closed = await servingBoth(pair, async (c) => {
    const client = new RawClient(replicaAddress(c, 'embed'));
    const cpuSeconds = clusterCpuSeconds(c, ['embed']);
    try {
      const out: ClosedRun[] = [];
      for (const [i, p] of ORDER.entries()) {
        const n = ORDER.slice(0, i + 1).filter((x) => x === p).length;
        const label = `curia-b ${LABEL[p]} #${n} closed ×${CURIA_B.concurrency}`;
        const scenario = embedScenario(client, { model: pair[p].model });
        progress(`${label} for ${CURIA_B.durationMs / 1000} s (first ${CURIA_B.warmupMs / 1000} s warm-up)`);
        const cpu0 = await cpuSeconds();
        const result = await runLoad(scenario.call, {
          mode: { kind: 'closed', concurrency: CURIA_B.concurrency },
          durationMs: CURIA_B.durationMs,
          maxRequests: 100_000,
          deadlineMs: CURIA_B.deadlineMs,
          warmupMs: CURIA_B.warmupMs,
        });
        const cpu = (await cpuSeconds()) - cpu0;
        const ok = result.byCode.OK ?? 0;
        const serviceCpuMsPerSlice = ok ? (1000 * cpu) / ok : Number.NaN;
        runs.push(runReport(label, scenario, result));
        progress(
          `  achieved ${result.steadyUnitsPerSec.toFixed(2)} slices/s, p50 ${result.latency.p50.toFixed(0)} ms, ${JSON.stringify(result.byCode)}, service CPU ${serviceCpuMsPerSlice.toFixed(0)} ms/slice`,
        );
        out.push({ label, precision: p, result, serviceCpuMsPerSlice });
      }
      return out;
    } catch (e) {
      progress(`curia-b runs failed; recent service output:\n${tail.text()}`);
      throw e;
    } finally {
      client.close();
    }
  });
  curiaB = { pair, runs: closed };
} finally {
  rmSync(work, { recursive: true, force: true });
}

// ---- Demo preset: per-run rows and INT8 ÷ F32 ratios.
const common = commonServedRate(demoSweeps.map((s) => s.steps));
const rows: SweepRow[] = demoSweeps.map((s) => sweepRow(s.label, s.steps, s.knee, LIGHT, common));
const pick = (p: Precision, f: (r: SweepRow) => number) =>
  rows.filter((_, i) => demoSweeps[i]!.precision === p).map(f);
const metric = (f: (r: SweepRow) => number) => int8Ratio(pick('f32', f), pick('int8', f));
const ratios = {
  knee: metric((r) => r.kneeOffered),
  maxAchieved: metric((r) => r.maxAchieved),
  lightP50: metric((r) => r.lightP50),
  lightP99: metric((r) => r.lightP99),
  serviceCpuPerCall: metric((r) => r.serviceCpuMsPerCall),
};
/** Run #2 ÷ run #1 of the same model: the noise floor. */
const drift = (p: Precision, f: (r: SweepRow) => number): number => {
  const [a, b] = pick(p, f);
  return a !== undefined && b !== undefined ? b / a : Number.NaN;
};

// ---- curia-b closed loop.
const bRuns = curiaB.runs;
const bPick = (p: Precision, f: (r: ClosedRun) => number) => bRuns.filter((r) => r.precision === p).map(f);
const bRate = (r: ClosedRun) => r.result.steadyUnitsPerSec;
const bCpu = (r: ClosedRun) => r.serviceCpuMsPerSlice;
const bP50 = (r: ClosedRun) => r.result.latency.p50;
const bRatios = {
  throughput: int8Ratio(bPick('f32', bRate), bPick('int8', bRate)),
  serviceCpuPerSlice: int8Ratio(bPick('f32', bCpu), bPick('int8', bCpu)),
  p50: int8Ratio(bPick('f32', bP50), bPick('int8', bP50)),
};

const int8Manifest = demo.int8.manifest;
const hostFeatures = int8Manifest.quantization?.fidelity.host_int8_features;
const cpuLine = `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores): INT8 flags ${hostFeatures ? hostFeatures.join(', ') || 'none' : 'unknown'} (libs/model int8CpuFeatures, recorded in the INT8 manifest at build on this host; checked: avx2, avx512f, avx512_vnni, avx_vnni, amx_int8)`;
const fidelityLine = (b: Bundle): string => {
  const f = b.manifest.quantization?.fidelity;
  return f
    ? `${b.model}: CLS cosine min ${f.cls_cosine_min.toFixed(5)}, patch cosine mean ${f.patch_cosine_mean.toFixed(5)}, max |diff| ${f.max_abs_diff.toExponential(2)} (build-time, shared CT)`
    : `${b.model}: no quantization record`;
};
const sizeLine = (p: Pair): string =>
  `${p.f32.model} ${(p.f32.manifest.model_bytes / 1e6).toFixed(1)} MB (built in ${p.f32.buildSeconds.toFixed(1)} s), ${p.int8.model} ${(p.int8.manifest.model_bytes / 1e6).toFixed(1)} MB (built in ${p.int8.buildSeconds.toFixed(1)} s)`;

function closedTable(): string {
  if (!bRuns.length) return '';
  return [
    `### curia-b, closed loop at concurrency ${CURIA_B.concurrency}`,
    '',
    `${CURIA_B.durationMs / 1000} s per run, the first ${CURIA_B.warmupMs / 1000} s left out of latency; slices/s while load was offered.`,
    '',
    '| run | achieved slices/s | p50 ms | p99 ms | OK | errors | service CPU-ms/slice |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...bRuns.map((r) => {
      const ok = r.result.byCode.OK ?? 0;
      return `| ${r.label} | ${f2(bRate(r))} | ${r.result.latency.p50.toFixed(0)} | ${r.result.latency.p99.toFixed(0)} | ${ok} | ${r.result.started - ok} | ${r.serviceCpuMsPerSlice.toFixed(0)} |`;
    }),
    '',
  ].join('\n');
}

const allOk = (r: LoadResult) => (r.byCode.OK ?? 0) === r.started && r.started > 0;
const checks: Check[] = [
  {
    name: 'Embed (demo): every sweep served its lightest step on both models (one replica, both bundles)',
    pass: demoSweeps.every((s) => Number.isFinite(s.knee.kneeOffered)),
    detail: demoSweeps
      .map((s) => `${s.label}: knee ${s.knee.kneeOffered}/s, max ${s.knee.maxAchieved.toFixed(2)}/s`)
      .join('; '),
  },
  ...(bRuns.length
    ? [
        {
          name: 'curia-b closed loop: every call OK on both models',
          pass: bRuns.every((r) => allOk(r.result)),
          detail: bRuns.map((r) => `${r.label}: ${JSON.stringify(r.result.byCode)}`).join('; '),
        },
      ]
    : []),
];

const notes = [
  SHARED_MACHINE_NOTE,
  ...(args.quick
    ? [
        `Run with --quick (6-s steps, rates ${embed.rates.join(', ')}; curia-b ${CURIA_B.durationMs / 1000} s per run): a look, not a measurement of the knee.`,
      ]
    : []),
  `Host: ${cpuLine}.`,
  `Bundles (random weights, seed 0, built at the start of the run with \`curia model build --random\`): demo ${sizeLine(demo)}; curia-b ${sizeLine(curiaB.pair)}.`,
  `INT8 fidelity: ${fidelityLine(demo.int8)}; ${fidelityLine(curiaB.pair.int8)}.`,
  'One Embed replica serves both bundles (CURIA_EMBED_MODELS=f32,int8, default settings: max batch 8, queue 64 slices); each call names its model in `start.model`, so both run in the same process, warmed up alike, and the batcher never mixes bundles. Whole sweeps alternate F32 → INT8 → F32 → INT8: the two runs of a model show how much the shared machine drifted.',
  "Same open-loop sweep and knee rule as experiment 1 (capacity), with 32 and 40 slices/s added on top for INT8's headroom (a sweep stops one step past its second unserved one). INT8 ÷ F32 ratios are the mean of the INT8 runs ÷ the mean of the F32 runs; the range in brackets is the extreme pairings (lowest INT8 ÷ highest F32 – highest INT8 ÷ lowest F32).",
  `CPU per call: the Embed process's process_cpu_seconds_total over a whole step (warm-up and drain included) ÷ its OK calls, at ${f2(common)} slices/s, the highest rate every sweep served.`,
  `Embed demo, INT8 ÷ F32: knee ${fmtRatio(ratios.knee)}, max achieved ${fmtRatio(ratios.maxAchieved)}, p50 at ${LIGHT} slices/s ${fmtRatio(ratios.lightP50)}, p99 ${fmtRatio(ratios.lightP99)}, service CPU per slice ${fmtRatio(ratios.serviceCpuPerCall)}.`,
  `Noise floor (run #2 ÷ run #1 of the same model): max achieved F32 ${f2(drift('f32', (r) => r.maxAchieved))}, INT8 ${f2(drift('int8', (r) => r.maxAchieved))}; service CPU per slice F32 ${f2(drift('f32', (r) => r.serviceCpuMsPerCall))}, INT8 ${f2(drift('int8', (r) => r.serviceCpuMsPerCall))}.`,
  `curia-b: an open-loop sweep at F32's ~0.5 slices/s would take hours, so instead closed loop at concurrency ${CURIA_B.concurrency} (batches of up to 8 form) for ${CURIA_B.durationMs / 1000} s per run, alternating F32 → INT8 → F32 → INT8 on one replica serving both. INT8 ÷ F32: achieved slices/s ${fmtRatio(bRatios.throughput)}, service CPU per slice ${fmtRatio(bRatios.serviceCpuPerSlice)}, p50 ${fmtRatio(bRatios.p50)}.`,
];

const written = writeReport(args.out, {
  experiment: 'int8',
  title:
    'Experiment 8 — int8: Embed capacity with the INT8 bundle next to F32 (demo knee, curia-b closed loop)',
  startedAt,
  finishedAt: nowIso(),
  config: {
    stepMs,
    embedRates: embed.rates,
    lightStep: LIGHT,
    order: demoSweeps.map((s) => s.label),
    models: { demo: { f32: demo.f32.model, int8: demo.int8.model } },
    embed:
      'one replica serving both bundles, default settings (max batch 8, queue 64 slices), 1 slice (512×512 F32) per Embed stream, CLS output',
    curiaB: {
      f32: curiaB.pair.f32.model,
      int8: curiaB.pair.int8.model,
      mode: `closed loop, concurrency ${CURIA_B.concurrency}`,
      durationMs: CURIA_B.durationMs,
      warmupMs: CURIA_B.warmupMs,
      order: bRuns.map((r) => r.label),
    },
    host: cpuLine,
  },
  runs,
  checks,
  notes,
  charts: [
    { file: 'embed-int8.png', panels: comparePanels('Embed demo', 'slice', demoSweeps) },
    ...(bRuns.length
      ? [
          {
            file: 'curia-b-int8.png',
            panels: [
              {
                title: `curia-b closed ×${CURIA_B.concurrency}: slices/s per run`,
                xLabel: 'run (F32, INT8, F32, INT8)',
                series: (['f32', 'int8'] as const).map((p) => ({
                  label: LABEL[p],
                  color: p === 'f32' ? COLORS.blue : COLORS.red,
                  points: bRuns.flatMap((r, i) => (r.precision === p ? [[i + 1, bRate(r)] as const] : [])),
                })),
              },
            ],
          },
        ]
      : []),
  ],
  summary: {
    'host INT8 CPU flags': hostFeatures?.join(', ') ?? 'unknown',
    ...Object.fromEntries(
      rows.flatMap((r) => [
        [`${r.run}: knee (offered slices/s)`, r.kneeOffered],
        [`${r.run}: max achieved (slices/s)`, r.maxAchieved],
        [`${r.run}: service CPU ms/slice`, r.serviceCpuMsPerCall],
      ]),
    ),
    'Embed demo INT8 ÷ F32, knee': ratios.knee.ratio,
    'Embed demo INT8 ÷ F32, max achieved': ratios.maxAchieved.ratio,
    [`Embed demo INT8 ÷ F32, p50 at ${LIGHT}/s`]: ratios.lightP50.ratio,
    [`Embed demo INT8 ÷ F32, p99 at ${LIGHT}/s`]: ratios.lightP99.ratio,
    'Embed demo INT8 ÷ F32, service CPU per slice': ratios.serviceCpuPerCall.ratio,
    ...Object.fromEntries(bRuns.map((r) => [`${r.label}: achieved slices/s`, bRate(r)])),
    'curia-b INT8 ÷ F32, achieved slices/s (closed loop)': bRatios.throughput.ratio,
    'curia-b INT8 ÷ F32, service CPU per slice': bRatios.serviceCpuPerSlice.ratio,
  },
});
const md = written.replace(
  '## Runs',
  `${sweepTable('Embed demo per run', 'slice', LIGHT, common, rows)}\n${closedTable()}\n## Runs`,
);
writeFileSync(join(args.out, 'report.md'), md);
process.stdout.write(md);
