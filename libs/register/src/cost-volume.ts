import { CuriaError } from '@curia/errors';
import { HeadGraph } from '@curia/heads';
import type { ModelParts } from '@curia/model';
import { Tensor } from 'onnxruntime-node';

import {
  averagePool,
  edgePad,
  onBatch,
  OnnxStep,
  selectStepBackend,
  shiftedSlice,
  type Closable,
  type OnnxStepOptions,
  type SelectOptions,
} from './onnx-steps.js';
import type { Dims3 } from './optim-fields.js';
import { boxSmooth } from './optim-smooth.js';

/**
 * The displacement of window index `k` of a search of radius `r`, in voxels: k enumerates the
 * (2r+1)³ window with x fastest, `k = (dx + r) + (2r+1)·((dy + r) + (2r+1)·(dz + r))`.
 */
export function windowDisplacement(k: number, r: number): [number, number, number] {
  const w = 2 * r + 1;
  return [(k % w) - r, (Math.floor(k / w) % w) - r, Math.floor(k / (w * w)) - r];
}

/** Number of displacements of a (2r+1)³ window. */
export function windowSize(r: number): number {
  return (2 * r + 1) ** 3;
}

/** What a cost-volume computation needs: two feature sets on one grid and the window. */
export interface CostVolumeInput {
  /** Fixed features, channel-major, NIfTI order. */
  readonly fixed: Float32Array;
  /** Moving features on the same grid. */
  readonly moving: Float32Array;
  readonly channels: number;
  readonly dims: Dims3;
  /** Search radius r in voxels: displacements in [−r, r]³. */
  readonly radius: number;
  /** Passes of the normalised 3×3×3 box filter applied to every displacement's cost (0 = none). */
  readonly smoothing: number;
}

/**
 * Computes SSD cost volumes: `cost[k·N + v] = mean_c (F_c(v) − M_c(clamp(v + d_k)))²`, then
 * `smoothing` normalised 3×3×3 box passes over v for every k. Layout [K, N] (K = (2r+1)³ in
 * {@link windowDisplacement} order, N voxels in NIfTI order). Moving positions outside the grid take
 * the nearest edge voxel (replicate padding): identical features cost nothing at d = 0 and are
 * symmetric about it everywhere, the borders included.
 */
export interface CostVolumeBackend {
  /** `typescript` or `onnx:<provider>`. */
  readonly name: string;
  compute(input: CostVolumeInput): Promise<Float32Array>;
}

/** INVALID_ARGUMENT unless the input is consistent. */
function checkInput(input: CostVolumeInput): void {
  const { dims, channels, radius, smoothing } = input;
  const n = dims[0] * dims[1] * dims[2];
  if (!Number.isInteger(radius) || radius < 0 || radius > 16) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `cost volume: radius must be an integer in 0..16, got ${radius}`,
    );
  }
  if (!Number.isInteger(smoothing) || smoothing < 0) {
    throw new CuriaError('INVALID_ARGUMENT', 'cost volume: smoothing must be a non-negative integer');
  }
  if (input.fixed.length !== channels * n || input.moving.length !== channels * n) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `cost volume: features must hold ${channels}×${dims.join('×')} values (fixed ${input.fixed.length}, moving ${input.moving.length})`,
    );
  }
}

/** Index table: clamp(i + d) for i in [0, n). */
function shifted(n: number, d: number): Int32Array {
  const t = new Int32Array(n);
  for (let i = 0; i < n; i++) t[i] = Math.min(n - 1, Math.max(0, i + d));
  return t;
}

/**
 * The TypeScript reference of the SSD cost volume (see {@link CostVolumeBackend}): channel-major
 * inner loops unrolled by four, each displacement's plane smoothed while it is still in cache.
 */
export function costVolumeTs(input: CostVolumeInput): Float32Array {
  checkInput(input);
  const { fixed: f, moving: m, channels, dims, radius: r, smoothing } = input;
  const [nx, ny, nz] = dims;
  const n = nx * ny * nz;
  const kTotal = windowSize(r);
  const out = new Float32Array(kTotal * n);
  const invC = 1 / channels;
  const c4 = channels - (channels % 4);
  for (let kk = 0; kk < kTotal; kk++) {
    const [dx, dy, dz] = windowDisplacement(kk, r);
    const tx = shifted(nx, dx);
    const base = kk * n;
    for (let k = 0; k < nz; k++) {
      const ks = Math.min(nz - 1, Math.max(0, k + dz));
      for (let j = 0; j < ny; j++) {
        const js = Math.min(ny - 1, Math.max(0, j + dy));
        const fRow = nx * (j + ny * k);
        const mRow = nx * (js + ny * ks);
        for (let i = 0; i < nx; i++) {
          let fo = fRow + i;
          let mo = mRow + tx[i]!;
          let s = 0;
          let c = 0;
          for (; c < c4; c += 4, fo += 4 * n, mo += 4 * n) {
            const e0 = f[fo]! - m[mo]!;
            const e1 = f[fo + n]! - m[mo + n]!;
            const e2 = f[fo + 2 * n]! - m[mo + 2 * n]!;
            const e3 = f[fo + 3 * n]! - m[mo + 3 * n]!;
            s += e0 * e0 + e1 * e1 + e2 * e2 + e3 * e3;
          }
          for (; c < channels; c++, fo += n, mo += n) {
            const e = f[fo]! - m[mo]!;
            s += e * e;
          }
          out[base + fRow + i] = s * invC;
        }
      }
    }
    if (smoothing > 0) boxSmooth(out.subarray(base, base + n), 1, dims, 1, smoothing);
  }
  return out;
}

/** The TypeScript cost-volume backend. */
export const TS_COST_VOLUME: CostVolumeBackend = {
  name: 'typescript',
  compute: (input) => Promise.resolve(costVolumeTs(input)),
};

/**
 * The ONNX graph of the SSD cost volume for radius r, C channels and `smoothing` box passes:
 * inputs `fixed`, `moving` [C, Z, Y, X] (the NIfTI-order arrays as C-order tensors) → `cost`
 * [K, Z, Y, X]. The moving features are edge-padded by r, each displacement is a Slice of the padded
 * tensor, `ReduceMean((fixed − slice)², channel)`; the K planes are concatenated and smoothed with
 * AveragePool(3, count_include_pad = 0). Spatial dims are symbolic: one graph serves every grid.
 */
export function costVolumeGraph(radius: number, channels: number, smoothing: number): ModelParts {
  const r = radius;
  const kTotal = windowSize(r);
  const g = new HeadGraph();
  const padded = edgePad(g, 'moving', r);
  const planes: string[] = [];
  for (let k = 0; k < kTotal; k++) {
    const diff = g.op('Sub', ['fixed', shiftedSlice(g, padded, r, windowDisplacement(k, r))]);
    planes.push(g.op('ReduceMean', [g.op('Mul', [diff, diff])], { axes: { ints: [0] }, keepdims: { i: 1 } }));
  }
  if (smoothing === 0) {
    g.op('Concat', planes, { axis: { i: 0 } }, 'cost');
  } else {
    onBatch(g, g.op('Concat', planes, { axis: { i: 0 } }), (x) => averagePool(g, x, 1, smoothing), 'cost');
  }
  return g.model(
    'ssd_cost_volume',
    [
      ['fixed', [channels, 'z', 'y', 'x']],
      ['moving', [channels, 'z', 'y', 'x']],
    ],
    [['cost', [kTotal, 'z', 'y', 'x']]],
  );
}

/** Options of {@link OnnxCostVolume}. */
export type OnnxCostVolumeOptions = OnnxStepOptions;

/**
 * The cost volume on ONNX Runtime: one session per (radius, channels, smoothing), created on first
 * use and kept until {@link OnnxCostVolume.close}.
 */
export class OnnxCostVolume extends OnnxStep implements CostVolumeBackend {
  constructor(opts: OnnxCostVolumeOptions = {}) {
    super('cost-volume', opts);
  }

  async compute(input: CostVolumeInput): Promise<Float32Array> {
    checkInput(input);
    const { dims, channels, radius, smoothing } = input;
    const shape = [channels, dims[2], dims[1], dims[0]];
    return this.run(
      `${radius}/${channels}/${smoothing}`,
      () => costVolumeGraph(radius, channels, smoothing),
      {
        fixed: new Tensor('float32', input.fixed, shape),
        moving: new Tensor('float32', input.moving, shape),
      },
      'cost',
    );
  }
}

/** A 2×2×2 one-channel run: loads the provider of `b`'s first session (or fails to). */
export function probeCostVolume(b: CostVolumeBackend): Promise<Float32Array> {
  return b.compute({
    fixed: new Float32Array(8),
    moving: new Float32Array(8),
    channels: 1,
    dims: [2, 2, 2],
    radius: 0,
    smoothing: 0,
  });
}

/**
 * The cost-volume backend to use: `'auto'` (default) is ONNX Runtime on CUDA when a CUDA session
 * loads, else TypeScript — on CPU ORT is faster per call but its session takes longer to create
 * than a registration's cost volumes save (see the README's measurements); `'typescript'` and
 * `'onnx'` (ORT on `executionProviders`, default CPU) force one. Close an ONNX backend when done.
 */
export function selectCostVolumeBackend(opts: SelectOptions = {}): Promise<CostVolumeBackend & Closable> {
  return selectStepBackend<CostVolumeBackend>(
    'costVolume',
    opts,
    TS_COST_VOLUME,
    (o) => new OnnxCostVolume(o),
    probeCostVolume,
  );
}
