/**
 * Timing of the registration optimisers (issue #16) on a synthetic 120×100×60 grid with 12 feature
 * channels (the size of MIND-SSC on a 3 mm abdomen): the affine search, the cost volume (TypeScript
 * and ONNX Runtime on CPU), the coupled convex stage, one Adam iteration, a whole `convexAdam`, and
 * the peak RSS. Run after `npm run build`:
 * `node libs/register/dist/bench/optim-bench.js [--dims 120,100,60] [--radius 3] [--json <file>]`.
 */
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';

import { affineSearch } from '../affine.js';
import { CONVEX_ADAM_DEFAULTS, convexAdam, coupledConvex } from '../convex-adam.js';
import { costVolumeTs, OnnxCostVolume, type CostVolumeInput } from '../cost-volume.js';
import type { GridField } from '../field.js';
import { adamObjective, type AdamProblem } from '../optim-adam.js';
import { pooledDims } from '../optim-fields.js';
import { mat4From, rotationXYZ } from '../optim-math.js';
import { randomSmoothDisplacement, smoothRandomVolume } from '../optim-testing.js';
import { poolField, resampleToGrid } from '../resample.js';
import { obliqueGrid } from '../testing.js';
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
  const log = (k: string, v: number | string): void => {
    out[k] = v;
    console.log(`${k.padEnd(34)} ${typeof v === 'number' ? v.toFixed(1) : v}`);
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
  const tsTimes: number[] = [];
  let cost: Float32Array = new Float32Array(0);
  for (let i = 0; i < 3; i++) {
    const [r, t] = await timed(() => costVolumeTs(input));
    cost = r;
    tsTimes.push(t);
  }
  log('cost volume TypeScript ms (median of 3)', median(tsTimes));
  const ort = new OnnxCostVolume({ executionProviders: ['cpu'] });
  try {
    const [, tFirst] = await timed(() => ort.compute(input));
    log('cost volume ORT cpu first ms', tFirst);
    const ortTimes: number[] = [];
    for (let i = 0; i < 3; i++) ortTimes.push((await timed(() => ort.compute(input)))[1]);
    log('cost volume ORT cpu ms (median of 3)', median(ortTimes));
  } finally {
    await ort.close();
  }

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

  const stages: Record<string, number> = {};
  let last = performance.now();
  let lastStage = '';
  const [, tTotal] = await timed(() =>
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
  log('peak RSS MB', process.resourceUsage().maxRSS / 1024);
  log('voxels', dims[0] * dims[1] * dims[2]);
  const json = arg('json');
  if (json) await writeFile(json, JSON.stringify(out, null, 2));
}

await main();
