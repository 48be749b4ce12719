import { CuriaError } from '@curia/errors';

import { TS_COST_VOLUME, windowDisplacement, windowSize, type CostVolumeBackend } from './cost-volume.js';
import type { GridField } from './field.js';
import { runAdam, smoothedDisplacementWith, type AdamProblem } from './optim-adam.js';
import { checkInt, checkNumber, checkpoint, throwIfAborted, type OptimControl } from './optim-control.js';
import {
  checkField,
  interiorMask,
  pooledDims,
  resampleDisplacement,
  sameGrid,
  voxelToWorldDisplacement,
  type Dims3,
} from './optim-fields.js';
import { poolField } from './resample.js';
import { TS_SMOOTHING, type SmoothingBackend } from './smoothing.js';
import { TS_WARP, type WarpBackend } from './voxel-warp.js';

/** Options of {@link convexAdam}; every field has a default. */
export interface ConvexAdamOptions extends OptimControl {
  /** Pooling factor of the cost-volume level relative to the input grid (default 2). */
  readonly stride?: number;
  /** Half-width r of the discrete search, in cost-level voxels: (2r+1)³ displacements (default 4). */
  readonly searchRadius?: number;
  /** Normalised 3×3×3 box passes applied to every displacement's cost (default 1). */
  readonly costSmoothing?: number;
  /**
   * Coupling weights α of the convex stage, in increasing order: each step takes, per voxel, the
   * argmin over the window of `cost/κ + α·|d − ū|²` (d, ū in cost-level voxels, κ the mean cost
   * contrast), then smooths (default [0.003, 0.01, 0.03, 0.1, 0.3, 1]).
   */
  readonly couplingSchedule?: readonly number[];
  /** Box passes smoothing the displacement after every coupling step (default 1). */
  readonly convexSmoothing?: number;
  /** Make the convex-stage field inverse-consistent with the backward registration (default false). */
  readonly inverseConsistent?: boolean;
  /** Fixed-point iterations of the inverse-consistency averaging (default 15). */
  readonly inverseIterations?: number;
  /** Pooling factor of the Adam level (default 2). */
  readonly adamStride?: number;
  /** Adam iterations (default 60; 0 = convex stage only). */
  readonly iterations?: number;
  /** Diffusion weight λ (default 2). */
  readonly lambda?: number;
  /** Adam step in Adam-level voxels (default 0.5). */
  readonly learningRate?: number;
  /** Box passes of the Adam smoothing reparameterisation (default 2). */
  readonly adamSmoothing?: number;
  /**
   * Voxels of the input grid next to each face whose similarity is ignored (default 3): features
   * there see the edge of the field of view (padding, clamped filters, a moving image cut by the
   * warp); the displacement is extrapolated from inside by the coupling and the regulariser.
   */
  readonly borderMargin?: number;
  /** Where the cost volume is computed (default TypeScript; see the README for ONNX on CUDA). */
  readonly costVolume?: CostVolumeBackend;
  /** Where the box smoothings of the convex stage and Adam run (default TypeScript). */
  readonly smoothing?: SmoothingBackend;
  /** Where the inverse-consistency compositions warp the fields (default TypeScript). */
  readonly warp?: WarpBackend;
}

/** The defaults of {@link ConvexAdamOptions}. */
export const CONVEX_ADAM_DEFAULTS = Object.freeze({
  stride: 2,
  searchRadius: 3,
  costSmoothing: 1,
  couplingSchedule: Object.freeze<number[]>([0.003, 0.01, 0.03, 0.1, 0.3, 1]),
  convexSmoothing: 1,
  inverseConsistent: false,
  inverseIterations: 15,
  adamStride: 1,
  iterations: 60,
  lambda: 2,
  learningRate: 0.2,
  adamSmoothing: 2,
  borderMargin: 3,
});

type Resolved = Required<
  Omit<ConvexAdamOptions, 'signal' | 'onProgress' | 'costVolume' | 'smoothing' | 'warp'>
>;

function resolve(o: ConvexAdamOptions, dims: Dims3): Resolved {
  const d = CONVEX_ADAM_DEFAULTS;
  const r: Resolved = {
    stride: checkInt(o.stride ?? d.stride, 1, 8, 'stride'),
    searchRadius: checkInt(o.searchRadius ?? d.searchRadius, 0, 8, 'searchRadius'),
    costSmoothing: checkInt(o.costSmoothing ?? d.costSmoothing, 0, 8, 'costSmoothing'),
    couplingSchedule: o.couplingSchedule ?? d.couplingSchedule,
    convexSmoothing: checkInt(o.convexSmoothing ?? d.convexSmoothing, 0, 8, 'convexSmoothing'),
    inverseConsistent: o.inverseConsistent ?? d.inverseConsistent,
    inverseIterations: checkInt(o.inverseIterations ?? d.inverseIterations, 0, 100, 'inverseIterations'),
    adamStride: checkInt(o.adamStride ?? d.adamStride, 1, 8, 'adamStride'),
    iterations: checkInt(o.iterations ?? d.iterations, 0, 10_000, 'iterations'),
    lambda: checkNumber(o.lambda ?? d.lambda, 0, 1e6, 'lambda'),
    learningRate: checkNumber(o.learningRate ?? d.learningRate, 1e-6, 100, 'learningRate'),
    adamSmoothing: checkInt(o.adamSmoothing ?? d.adamSmoothing, 0, 8, 'adamSmoothing'),
    borderMargin: checkInt(o.borderMargin ?? d.borderMargin, 0, 64, 'borderMargin'),
  };
  r.couplingSchedule.forEach((a, i) => checkNumber(a, 0, 1e6, `couplingSchedule[${i}]`));
  const coarse = pooledDims(dims, r.stride);
  if (Math.min(...coarse) < 2) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `grid ${dims.join('×')} is too small for stride ${r.stride} (each axis needs 2 cost-level voxels)`,
    );
  }
  return r;
}

/**
 * Coupled convex optimisation over a cost volume [K, N] (ConvexAdam's first stage): the per-voxel
 * argmin, smoothed; then for every α of the schedule the per-voxel argmin of `cost/κ + α·|d − ū|²`
 * and its smoothing ū (through `smoothing`). Returns ū (3 channels, voxel units of the cost level).
 */
export async function coupledConvex(
  cost: Float32Array,
  dims: Dims3,
  radius: number,
  schedule: readonly number[],
  smoothingPasses: number,
  data: Uint8Array | null = null,
  smoothing: SmoothingBackend = TS_SMOOTHING,
): Promise<Float64Array> {
  const n = dims[0] * dims[1] * dims[2];
  const kTotal = windowSize(radius);
  const hasData = (v: number): boolean => data === null || data[v] !== 0;
  const disp = Array.from({ length: kTotal }, (_, k) => windowDisplacement(k, radius));
  const best = new Int32Array(n);
  const bestVal = new Float64Array(n).fill(Infinity);
  const sum = new Float64Array(n);
  // Voxel tiles keep the per-voxel state in cache while the K planes stream by.
  const tile = 2048;
  for (let t0 = 0; t0 < n; t0 += tile) {
    const t1 = Math.min(n, t0 + tile);
    for (let k = 0; k < kTotal; k++) {
      const o = k * n;
      for (let v = t0; v < t1; v++) {
        const c = cost[o + v]!;
        sum[v]! += c;
        if (c < bestVal[v]!) {
          bestVal[v] = c;
          best[v] = k;
        }
      }
    }
  }
  // κ: the mean over voxels of (mean − min) of the cost, so α is independent of the feature scale.
  let contrast = 0;
  let counted = 0;
  for (let v = 0; v < n; v++) {
    if (!hasData(v)) continue;
    contrast += sum[v]! / kTotal - bestVal[v]!;
    counted++;
  }
  contrast /= Math.max(counted, 1);
  const kappa = contrast > 0 ? contrast : 1;
  const u = new Float64Array(3 * n);
  const w = 2 * radius + 1;
  const strides = [1, w, w * w];
  // The displacement of the argmin, refined per axis by the vertex of the parabola through the
  // (coupled) costs of its two neighbours in the window — the discrete step would otherwise quantise
  // the field to whole cost-level voxels. `a` = κα and `ubar` the previous smoothed field (a = 0: none).
  const fromBest = async (a: number, ubar: Float64Array | null): Promise<void> => {
    for (let v = 0; v < n; v++) {
      if (!hasData(v)) {
        // No data: the coupling alone, whose minimiser is ū itself (0 before the first coupling).
        for (let axis = 0; axis < 3; axis++) u[axis * n + v] = ubar ? ubar[axis * n + v]! : 0;
        continue;
      }
      const k = best[v]!;
      const d = disp[k]!;
      const coupled = (kk: number): number => {
        const dd = disp[kk]!;
        let c = cost[kk * n + v]!;
        if (ubar) {
          c += a * ((dd[0] - ubar[v]!) ** 2 + (dd[1] - ubar[n + v]!) ** 2 + (dd[2] - ubar[2 * n + v]!) ** 2);
        }
        return c;
      };
      const c0 = coupled(k);
      const pos = [v % dims[0], Math.floor(v / dims[0]) % dims[1], Math.floor(v / (dims[0] * dims[1]))];
      for (let axis = 0; axis < 3; axis++) {
        let x = d[axis]!;
        // Both neighbours inside the window, and inside the grid (a clamped neighbour repeats the
        // edge and would bias the vertex outwards).
        const p = pos[axis]! + x;
        if (x > -radius && x < radius && p - 1 >= 0 && p + 1 <= dims[axis]! - 1) {
          const cm = coupled(k - strides[axis]!);
          const cp = coupled(k + strides[axis]!);
          const den = cm - 2 * c0 + cp;
          if (den > 0) x += Math.max(-0.5, Math.min(0.5, (0.5 * (cm - cp)) / den));
        }
        u[axis * n + v] = x;
      }
    }
    if (smoothingPasses > 0) await smoothing.smooth({ data: u, channels: 3, dims, passes: smoothingPasses });
  };
  await fromBest(0, null);
  for (const alpha of schedule) {
    // cost + κ·α·|d − ū|² = cost + κα|d|² − 2κα d·ū + const(v): the constant drops from the argmin.
    const a = kappa * alpha;
    bestVal.fill(Infinity);
    for (let t0 = 0; t0 < n; t0 += tile) {
      const t1 = Math.min(n, t0 + tile);
      for (let k = 0; k < kTotal; k++) {
        const d = disp[k]!;
        const ak = a * (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        const bx = -2 * a * d[0];
        const by = -2 * a * d[1];
        const bz = -2 * a * d[2];
        const o = k * n;
        for (let v = t0; v < t1; v++) {
          const c = cost[o + v]! + ak + bx * u[v]! + by * u[n + v]! + bz * u[2 * n + v]!;
          if (c < bestVal[v]!) {
            bestVal[v] = c;
            best[v] = k;
          }
        }
      }
    }
    await fromBest(a, Float64Array.from(u));
  }
  return u;
}

/**
 * Inverse-consistency averaging of a forward field u1 and a backward field u2 (voxel units, same
 * grid): `iterations` times u1 ← ½(u1 − u2∘(id + u1)), u2 ← ½(u2 − u1∘(id + u2)), trilinear and
 * edge-clamped (the compositions through `warp`). Returns the new forward field.
 */
export async function inverseConsistentPair(
  forward: Float64Array,
  backward: Float64Array,
  dims: Dims3,
  iterations: number,
  warp: WarpBackend = TS_WARP,
): Promise<Float64Array> {
  let u1 = forward;
  let u2 = backward;
  const compose = async (a: Float64Array, b: Float64Array): Promise<Float64Array> => {
    // ½(a − b∘(id + a))
    const bAt = await warp.warp({ data: b, channels: 3, dims, displacement: a });
    const out = new Float64Array(a.length);
    for (let q = 0; q < a.length; q++) out[q] = 0.5 * (a[q]! - bAt[q]!);
    return out;
  };
  for (let it = 0; it < iterations; it++) {
    const next1 = await compose(u1, u2);
    const next2 = await compose(u2, u1);
    u1 = next1;
    u2 = next2;
  }
  return u1;
}

function featureScale(fixed: Float32Array, channels: number, n: number): number {
  let total = 0;
  for (let c = 0; c < channels; c++) {
    let s = 0;
    let s2 = 0;
    for (let v = c * n; v < (c + 1) * n; v++) {
      const x = fixed[v]!;
      s += x;
      s2 += x * x;
    }
    const mean = s / n;
    total += Math.max(s2 / n - mean * mean, 0);
  }
  return total > 0 ? total : 1;
}

/**
 * ConvexAdam-style deformable registration of features on one grid (Siebert, Hansen & Heinrich 2021):
 * an SSD cost volume over a (2r+1)³ displacement window at a pooled level, coupled convex
 * optimisation with increasing coupling (optionally made inverse-consistent with the backward
 * registration), then Adam instance optimisation of a smoothed displacement grid minimising the
 * feature SSD plus λ·diffusion.
 *
 * `fixed` and `moving` are features (any number of channels) on the SAME grid — the moving one
 * already resampled through the affine. Returns v (3 channels, LPS millimetres, on that grid) such
 * that the moving features are sampled at x + v(x). Positions beyond the grid take edge values.
 * INVALID_ARGUMENT for mismatched inputs or options, CANCELLED when `signal` fires (checked at every
 * stage and Adam iteration).
 */
export async function convexAdam(
  fixed: GridField,
  moving: GridField,
  opts: ConvexAdamOptions = {},
): Promise<GridField> {
  checkField(fixed, 'fixed');
  checkField(moving, 'moving');
  if (!sameGrid(fixed.grid, moving.grid) || fixed.channels !== moving.channels) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      'fixed and moving features must share one grid and channel count (resample the moving features first)',
    );
  }
  const dims = fixed.grid.dims;
  const o = resolve(opts, dims);
  const { signal, onProgress } = opts;
  const what = 'convexAdam';
  const backend = opts.costVolume ?? TS_COST_VOLUME;
  const smoothing = opts.smoothing ?? TS_SMOOTHING;
  const channels = fixed.channels;
  throwIfAborted(signal, what);

  const cDims = pooledDims(dims, o.stride);
  const cF = poolField(fixed, o.stride).data;
  const cM = poolField(moving, o.stride).data;
  const directions = o.inverseConsistent ? 2 : 1;
  const cData = interiorMask(dims, o.stride, o.borderMargin);
  // Cost volume then coupled convex optimisation of F against M (d = 1: forward, 2: backward).
  const convexStage = async (f: Float32Array, m: Float32Array, d: number): Promise<Float64Array> => {
    onProgress?.('cost-volume', d - 1, directions);
    const cost = await backend.compute({
      fixed: f,
      moving: m,
      channels,
      dims: cDims,
      radius: o.searchRadius,
      smoothing: o.costSmoothing,
    });
    onProgress?.('cost-volume', d, directions);
    await checkpoint(signal, what);
    const field = await coupledConvex(
      cost,
      cDims,
      o.searchRadius,
      o.couplingSchedule,
      o.convexSmoothing,
      cData,
      smoothing,
    );
    onProgress?.('convex', d, directions);
    await checkpoint(signal, what);
    return field;
  };

  // 1–2. Cost volume and coupled convex optimisation (and the backward ones for inverse consistency).
  let u = await convexStage(cF, cM, 1);
  if (o.inverseConsistent) {
    const ub = await convexStage(cM, cF, 2);
    u = await inverseConsistentPair(u, ub, cDims, o.inverseIterations, opts.warp);
    onProgress?.('inverse-consistency', 1, 1);
  }

  // 3. Adam instance optimisation at the Adam level.
  const aDims = pooledDims(dims, o.adamStride);
  const params = resampleDisplacement(u, dims, o.stride, o.adamStride);
  const aF = poolField(fixed, o.adamStride).data;
  const aM = poolField(moving, o.adamStride).data;
  const na = aDims[0] * aDims[1] * aDims[2];
  const problem: AdamProblem = {
    fixed: aF,
    moving: aM,
    channels,
    dims: aDims,
    simScale: 1 / (na * featureScale(aF, channels, na)),
    lambda: o.lambda,
    smoothingPasses: o.adamSmoothing,
    data: interiorMask(dims, o.adamStride, o.borderMargin),
  };
  let field: Float64Array;
  if (o.iterations > 0) {
    onProgress?.('adam', 0, o.iterations);
    const p = await runAdam(
      problem,
      params,
      { iterations: o.iterations, learningRate: o.learningRate },
      async (t) => {
        onProgress?.('adam', t, o.iterations);
        await checkpoint(signal, what);
      },
      smoothing,
    );
    field = await smoothedDisplacementWith(problem, p, smoothing);
  } else {
    field = params;
  }

  // 4. Back to the input grid, in millimetres.
  const full = resampleDisplacement(field, dims, o.adamStride, 1);
  return voxelToWorldDisplacement(full, fixed.grid);
}
