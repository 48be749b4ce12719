/**
 * Timing of the registration optimisers (issue #16) on a synthetic 120×100×60 grid with 12 feature
 * channels (the size of MIND-SSC on a 3 mm abdomen): the affine search, the heavy steps on
 * TypeScript and on ONNX Runtime's CPU provider (MIND-SSC, cost volume, box smoothing, warping —
 * with the max |TS − ORT|), the coupled convex stage, one Adam iteration, a whole `convexAdam`, and
 * the peak RSS. Run after `npm run build`:
 * `node libs/register/dist/bench/optim-bench.js [--dims 120,100,60] [--radius 3] [--threads n] [--json <file>]`
 * (`--threads`: ORT's intra-op threads, default the CPU budget).
 */
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';

import { affineSearch } from '../affine.js';
import { selectRegistrationBackends } from '../backends.js';
import { CONVEX_ADAM_DEFAULTS, convexAdam, coupledConvex } from '../convex-adam.js';
import { costVolumeTs, OnnxCostVolume, type CostVolumeInput } from '../cost-volume.js';
import type { GridField } from '../field.js';
import { mindSsc, OnnxMind } from '../mind.js';
import { normalizeIntensities } from '../normalize.js';
import { adamObjective, adamObjectiveWith, type AdamProblem } from '../optim-adam.js';
import { pooledDims, worldToVoxelDisplacement } from '../optim-fields.js';
import { mat4From, rotationXYZ } from '../optim-math.js';
import { boxSmooth } from '../optim-smooth.js';
import { randomSmoothDisplacement, smoothRandomVolume } from '../optim-testing.js';
import { poolField, resampleToGrid } from '../resample.js';
import { OnnxSmoothing } from '../smoothing.js';
import { obliqueGrid } from '../testing.js';
import { OnnxWarp, warpVoxelsTs } from '../voxel-warp.js';
import { warpImage } from '../warp.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function timed<T>(f: () => Promise<T> | T): Promise<[T, number]> {
  const t = performance.now();
  const r = await f();
  return [r, performance.now() - t];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

type Log = (k: string, v: number | string) => void;

/**
 * One heavy step on TypeScript and on ORT's CPU provider: the median of 3 runs each (ORT after its
 * first call, which creates the session), and the largest difference of the answers. Returns the
 * TypeScript answer.
 */
async function compareStep<T extends ArrayLike<number>>(
  log: Log,
  step: string,
  ts: () => T,
  ort: { run: () => Promise<ArrayLike<number>>; close: () => Promise<void> },
): Promise<T> {
  const tsTimes: number[] = [];
  let want = ts();
  for (let i = 0; i < 3; i++) {
    const [r, t] = await timed(ts);
    want = r;
    tsTimes.push(t);
  }
  log(`${step} TypeScript ms (median of 3)`, median(tsTimes));
  try {
    const [got, tFirst] = await timed(ort.run);
    log(`${step} ORT cpu first ms`, tFirst);
    const ortTimes: number[] = [];
    for (let i = 0; i < 3; i++) ortTimes.push((await timed(ort.run))[1]);
    log(`${step} ORT cpu ms (median of 3)`, median(ortTimes));
    log(`${step} max |TS − ORT|`, maxAbsDiff(want, got).toExponential(2));
  } finally {
    await ort.close();
  }
  return want;
}

async function main(): Promise<void> {
  const dims = (arg('dims') ?? '120,100,60').split(',').map(Number) as [number, number, number];
  const radius = Number(arg('radius') ?? CONVEX_ADAM_DEFAULTS.searchRadius);
  const channels = 12;
  const grid = obliqueGrid(dims, 0, [3, 3, 3], [0, 0, 0]);
  const out: Record<string, unknown> = {
    dims,
    channels,
    radius,
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    loadavg: loadavg(),
    node: process.version,
  };
  const log: Log = (k, v) => {
    out[k] = v;
    console.log(`${k.padEnd(44)} ${typeof v === 'number' ? v.toFixed(1) : v}`);
  };

  const moving = smoothRandomVolume(grid, channels, 1);
  // Fixed = moving seen through a 4° / 3 mm affine and a smooth 5 mm warp.
  const rot = rotationXYZ(0.02, -0.03, (4 * Math.PI) / 180);
  const c = [(dims[0] - 1) * 1.5, (dims[1] - 1) * 1.5, (dims[2] - 1) * 1.5];
  const rc = [0, 1, 2].map((r) => rot[3 * r]! * c[0]! + rot[3 * r + 1]! * c[1]! + rot[3 * r + 2]! * c[2]!);
  const truthAffine = mat4From(rot, [c[0]! - rc[0]! + 3, c[1]! - rc[1]! - 2, c[2]! - rc[2]! + 1]);
  const warp = randomSmoothDisplacement(grid, 2, { bumps: 6, amplitudeMm: 5, sigmaMm: 30 });
  const fixed: GridField = warpImage(moving, grid, truthAffine, warp);

  // Affine search (the moving sampler is the optimisers' private trilinear resampler).
  const [aff, tAffine] = await timed(() => affineSearch(fixed, (m, g) => resampleToGrid(moving, g, m)));
  log('affineSearch ms', tAffine);
  log('affine matches', aff.matches);

  // Cost volume at the cost level (stride 2).
  const stride = CONVEX_ADAM_DEFAULTS.stride;
  const cDims = pooledDims(dims, stride);
  const after = resampleToGrid(moving, grid, aff.fixedToMoving);
  const input: CostVolumeInput = {
    fixed: poolField(fixed, stride).data,
    moving: poolField(after, stride).data,
    channels,
    dims: cDims,
    radius,
    smoothing: CONVEX_ADAM_DEFAULTS.costSmoothing,
  };
  log('cost level', cDims.join('×'));
  // ORT intra-op threads (default: the CPU budget); the TypeScript kernels use one core.
  const threads = arg('threads');
  const cpu = { executionProviders: ['cpu'], ...(threads ? { threads: Number(threads) } : {}) } as const;
  log('ORT threads', threads ?? 'cpu budget');
  const ortCost = new OnnxCostVolume(cpu);
  const cost = await compareStep(log, 'cost volume', () => costVolumeTs(input), {
    run: () => ortCost.compute(input),
    close: () => ortCost.close(),
  });

  // MIND-SSC (d = 2, r = 1) of a one-channel image on the input grid.
  const image = normalizeIntensities(
    { grid, channels: 1, data: fixed.data.slice(0, dims[0] * dims[1] * dims[2]) },
    'mr',
  );
  const ortMind = new OnnxMind(cpu);
  await compareStep(log, 'MIND-SSC', () => mindSsc(image).data, {
    run: async () => (await ortMind.compute(image)).data,
    close: () => ortMind.close(),
  });

  // Box smoothing of a displacement (3 channels): Adam's reparameterisation (2 passes of r = 1 on
  // the Adam level) and the convex stage's (1 pass on the cost level).
  for (const [what, level, passes] of [
    ['box smoothing Adam level ×2', CONVEX_ADAM_DEFAULTS.adamStride, CONVEX_ADAM_DEFAULTS.adamSmoothing],
    ['box smoothing cost level ×1', stride, CONVEX_ADAM_DEFAULTS.convexSmoothing],
  ] as const) {
    const pooled = poolField(warp, level);
    const field = worldToVoxelDisplacement(pooled);
    const d = pooled.grid.dims;
    const ortSmooth = new OnnxSmoothing(cpu);
    await compareStep(
      log,
      `${what} ${d.join('×')}`,
      () => boxSmooth(Float64Array.from(field), 3, d, 1, passes),
      {
        run: () => ortSmooth.smooth({ data: Float64Array.from(field), channels: 3, dims: d, passes }),
        close: () => ortSmooth.close(),
      },
    );
  }

  // Warping: the 12 moving feature channels through the true field (voxels), as Adam samples them.
  const warpInput = {
    data: after.data,
    channels,
    dims,
    displacement: worldToVoxelDisplacement(warp),
  };
  const ortWarp = new OnnxWarp(cpu);
  await compareStep(log, 'warp 12 channels', () => warpVoxelsTs(warpInput), {
    run: () => ortWarp.warp(warpInput),
    close: () => ortWarp.close(),
  });

  const [, tConvex] = await timed(() =>
    coupledConvex(
      cost,
      cDims,
      radius,
      CONVEX_ADAM_DEFAULTS.couplingSchedule,
      CONVEX_ADAM_DEFAULTS.convexSmoothing,
    ),
  );
  log('coupled convex ms', tConvex);

  // One Adam iteration (objective + gradient) at the Adam level.
  const aDims = pooledDims(dims, CONVEX_ADAM_DEFAULTS.adamStride);
  const na = aDims[0] * aDims[1] * aDims[2];
  const problem: AdamProblem = {
    fixed: poolField(fixed, CONVEX_ADAM_DEFAULTS.adamStride).data,
    moving: poolField(after, CONVEX_ADAM_DEFAULTS.adamStride).data,
    channels,
    dims: aDims,
    simScale: 1 / na,
    lambda: CONVEX_ADAM_DEFAULTS.lambda,
    smoothingPasses: CONVEX_ADAM_DEFAULTS.adamSmoothing,
  };
  const params = new Float64Array(3 * na);
  const grad = new Float64Array(3 * na);
  const iterTimes: number[] = [];
  for (let i = 0; i < 10; i++) iterTimes.push((await timed(() => adamObjective(problem, params, grad)))[1]);
  log('Adam iteration ms (median of 10)', median(iterTimes));
  // The same with both smoothings (forward and adjoint) on ORT's CPU provider.
  const ortAdam = new OnnxSmoothing(cpu);
  try {
    await adamObjectiveWith(problem, params, grad, ortAdam);
    const ortIter: number[] = [];
    for (let i = 0; i < 10; i++) {
      ortIter.push((await timed(() => adamObjectiveWith(problem, params, grad, ortAdam)))[1]);
    }
    log('Adam iteration, ORT cpu smoothing ms (median of 10)', median(ortIter));
  } finally {
    await ortAdam.close();
  }

  const stages: Record<string, number> = {};
  let last = performance.now();
  let lastStage = '';
  const [vTs, tTotal] = await timed(() =>
    convexAdam(fixed, after, {
      onProgress: (stage, done, total) => {
        if (done === total || stage !== lastStage) {
          const now = performance.now();
          stages[stage] = (stages[stage] ?? 0) + (now - last);
          last = now;
          lastStage = stage;
        }
      },
    }),
  );
  log('convexAdam total ms (defaults)', tTotal);
  for (const [k, v] of Object.entries(stages)) log(`  until ${k} ms`, v);
  // The same with what selectRegistrationBackends('auto') picks here (no CUDA: box smoothing on
  // ORT's CPU provider, one thread; the cost volume and warping in TypeScript).
  const auto = await selectRegistrationBackends('auto', threads ? { threads: Number(threads) } : {});
  try {
    const [vAuto, tAuto] = await timed(() => convexAdam(fixed, after, auto));
    log(`convexAdam total ms (auto: smoothing ${auto.smoothing.name})`, tAuto);
    log('  max |v auto − v TypeScript| mm', maxAbsDiff(vAuto.data, vTs.data).toExponential(2));
  } finally {
    await auto.close();
  }
  log('peak RSS MB', process.resourceUsage().maxRSS / 1024);
  log('voxels', dims[0] * dims[1] * dims[2]);
  const json = arg('json');
  if (json) await writeFile(json, JSON.stringify(out, null, 2));
}

await main();
