import { CuriaError } from '@curia/errors';
import { HeadGraph } from '@curia/heads';
import {
  createProviderSession,
  encodeModel,
  type ExecutionProviderName,
  type ModelParts,
} from '@curia/model';
import { cpuBudget } from '@curia/tensors';
import { Tensor, type InferenceSession } from 'onnxruntime-node';

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
  const big = 2 ** 53 - 1;
  // Edge (replicate) padding by r on the three spatial axes: r copies (Tile) of the first and last
  // planes concatenated axis by axis — HeadGraph has no string attribute for Pad's mode 'edge'.
  let padded = 'moving';
  if (r > 0) {
    for (const axis of [1, 2, 3]) {
      const ax = g.int64('axis', [axis]);
      const first = g.op('Slice', [padded, g.int64('s0', [0]), g.int64('e0', [1]), ax]);
      const last = g.op('Slice', [padded, g.int64('s1', [-1]), g.int64('e1', [big]), ax]);
      const reps = g.int64(
        'reps',
        [0, 1, 2, 3].map((a) => (a === axis ? r : 1)),
      );
      padded = g.op('Concat', [g.op('Tile', [first, reps]), padded, g.op('Tile', [last, reps])], {
        axis: { i: axis },
      });
    }
  }
  const axes = g.int64('axes', [1, 2, 3]);
  const planes: string[] = [];
  for (let k = 0; k < kTotal; k++) {
    const [dx, dy, dz] = windowDisplacement(k, r);
    const starts = g.int64('starts', [r + dz, r + dy, r + dx]);
    // Slice end along an axis of padded length D + 2r: start + D = −(r − d), or "to the end" at d = r.
    const ends = g.int64(
      'ends',
      [dz, dy, dx].map((d) => (d === r ? big : -(r - d))),
    );
    const diff = g.op('Sub', ['fixed', g.op('Slice', [padded, starts, ends, axes])]);
    planes.push(g.op('ReduceMean', [g.op('Mul', [diff, diff])], { axes: { ints: [0] }, keepdims: { i: 1 } }));
  }
  if (smoothing === 0) {
    g.op('Concat', planes, { axis: { i: 0 } }, 'cost');
  } else {
    let x = g.op('Unsqueeze', [g.op('Concat', planes, { axis: { i: 0 } }), g.int64('axis0', [0])]);
    for (let p = 0; p < smoothing; p++) {
      x = g.op('AveragePool', [x], {
        kernel_shape: { ints: [3, 3, 3] },
        pads: { ints: [1, 1, 1, 1, 1, 1] },
        count_include_pad: { i: 0 },
      });
    }
    g.op('Squeeze', [x, g.int64('axis0', [0])], {}, 'cost');
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
export interface OnnxCostVolumeOptions {
  /** Providers in preference order (default ['cuda', 'cpu']: CUDA when present). */
  readonly executionProviders?: readonly ExecutionProviderName[];
  /** ORT intra-op threads (default: the CPU budget). */
  readonly threads?: number;
}

/**
 * The cost volume on ONNX Runtime: one session per (radius, channels, smoothing), created on first
 * use and kept until {@link OnnxCostVolume.close}.
 */
export class OnnxCostVolume implements CostVolumeBackend {
  private readonly sessions = new Map<
    string,
    Promise<{ session: InferenceSession; provider: ExecutionProviderName }>
  >();
  private lastProvider: ExecutionProviderName | undefined;

  constructor(private readonly opts: OnnxCostVolumeOptions = {}) {}

  /** `onnx:<provider of the last session>` (`onnx` before the first). */
  get name(): string {
    return this.lastProvider === undefined ? 'onnx' : `onnx:${this.lastProvider}`;
  }

  private session(r: number, c: number, s: number) {
    const key = `${r}/${c}/${s}`;
    let p = this.sessions.get(key);
    if (!p) {
      p = createProviderSession(
        encodeModel(costVolumeGraph(r, c, s)),
        {
          intraOpNumThreads: this.opts.threads ?? cpuBudget(),
          interOpNumThreads: 1,
          executionMode: 'sequential',
          graphOptimizationLevel: 'all',
          logSeverityLevel: 3,
        },
        this.opts.executionProviders ?? ['cuda', 'cpu'],
      );
      this.sessions.set(key, p);
    }
    return p;
  }

  async compute(input: CostVolumeInput): Promise<Float32Array> {
    checkInput(input);
    const { dims, channels, radius, smoothing } = input;
    const { session, provider } = await this.session(radius, channels, smoothing);
    this.lastProvider = provider;
    const shape = [channels, dims[2], dims[1], dims[0]];
    const out = await session.run({
      fixed: new Tensor('float32', input.fixed, shape),
      moving: new Tensor('float32', input.moving, shape),
    });
    const cost = out.cost;
    if (!cost || !(cost.data instanceof Float32Array)) {
      throw new CuriaError('INTERNAL', 'cost-volume graph returned no float32 cost');
    }
    return cost.data;
  }

  /** Releases every session. */
  async close(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const p of all) {
      // A session that never loaded has nothing to release.
      const loaded = await p.catch(() => null);
      if (loaded) await loaded.session.release();
    }
  }
}

/**
 * The cost-volume backend to use: `'auto'` (default) is ONNX Runtime on CUDA when a CUDA session
 * loads, else TypeScript — on CPU the TypeScript kernel is as fast as ORT's and needs no session
 * (see the README's measurements); `'typescript'` and `'onnx'` (ORT on `executionProviders`,
 * default CPU) force one. Close an ONNX backend when done.
 */
export async function selectCostVolumeBackend(
  opts: { readonly prefer?: 'auto' | 'typescript' | 'onnx' } & OnnxCostVolumeOptions = {},
): Promise<CostVolumeBackend & { close?: () => Promise<void> }> {
  const prefer = opts.prefer ?? 'auto';
  if (prefer === 'typescript') return TS_COST_VOLUME;
  if (prefer === 'onnx') {
    return new OnnxCostVolume({ ...opts, executionProviders: opts.executionProviders ?? ['cpu'] });
  }
  const cuda = new OnnxCostVolume({ ...opts, executionProviders: ['cuda'] });
  try {
    // A 2×2×2 one-channel probe loads the CUDA provider (or fails to).
    await cuda.compute({
      fixed: new Float32Array(8),
      moving: new Float32Array(8),
      channels: 1,
      dims: [2, 2, 2],
      radius: 0,
      smoothing: 0,
    });
    return cuda;
  } catch {
    await cuda.close();
    return TS_COST_VOLUME;
  }
}
