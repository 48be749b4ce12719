/**
 * Synthetic registration pairs for `npm run bench:register` (issue #16), made from one labelled CT.
 *
 * Every pair shares the CT's grid for FIXED and MOVING. The true transform T maps fixed positions to
 * moving positions (pull-back, see `../field.ts`), in LPS mm:
 *
 *     T(x) = L · (x + d(x)) + o
 *
 * - `d` is a smooth displacement in fixed space: a sum of Gaussian bumps `a_b · exp(-|x - c_b|² / 2σ_b²)`
 *   (zero for the pure affine pair);
 * - `L`, `o` an affine about the grid centre c: `L = R · K · S`, `o = c + t - L · c` (identity for the
 *   pure deformable pair).
 *
 * T is analytic, so the true displacement `u(x) = T(x) - x` on the fixed grid is exact. The MOVING
 * image is made so that sampling it at T(x) gives back the fixed image at x, i.e. moving = fixed ∘ T⁻¹:
 * for every moving voxel centre y we solve `T(x) = y` numerically (exact inverse of the affine, then
 * Newton on `x + d(x) = L⁻¹(y - o)` with the analytic Jacobian of d, to ~1e-7 mm) and sample the fixed
 * CT at x (quintic B-spline interpolation; nearest for the labels; outside the fixed grid: air, label
 * 0). The modality pair remaps the CT through {@link MR_LIKE_TABLE} first, then warps it the same way.
 * {@link roundTrip} checks every pair: the moving image sampled back through T against the fixed image
 * inside the body (Pearson correlation), also for a low-passed CT (the geometry without the loss that
 * resampling a 3 mm CT twice has), with the wrong direction and no transform as controls, and the labels.
 *
 * Files are written on the CT's canonical grid (voxel (i, j, k) = (L, P, S) index, NIfTI affine
 * = the LPS affine with x, y negated), so the stored order is the grid order and ITK/elastix read
 * the same grid with identity direction cosines.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { mulberry32 } from '@curia/tensors';
import { dice, flipWorldXY, openVolume, writeNifti } from '@curia/volume';

import { voxelCount, type Grid, type GridField } from '../field.js';
import {
  det3,
  gaussianSmooth,
  inv3,
  mat3Mul,
  sampleNearest,
  sampleSpline,
  splineCoefficients,
  voxelToWorld,
  warpLabels,
  worldToVoxel,
  type LabelVolume,
  type ScalarVolume,
  type SplineDegree,
  type Vec3,
} from './sampling.js';
import { ORGANS } from './metrics-labels.js';

export { ORGANS } from './metrics-labels.js';

export type { LabelVolume, ScalarVolume, Vec3 } from './sampling.js';

/** The image interpolator of the pairs (and of the round-trip check). */
export const SPLINE_DEGREE: SplineDegree = 5;

/** HU of the padding outside the CT's field of view (air). */
export const AIR_HU = -1024;
/** Fixed voxels above this HU count as body (round-trip check). */
export const BODY_HU = -500;

/** A Gaussian bump of the smooth displacement: `amplitude · exp(-|x - centre|² / (2 sigma²))`, mm. */
export interface Bump {
  readonly centre: Vec3;
  readonly sigma: number;
  readonly amplitude: Vec3;
}

/** The drawn affine, for the record (all about the grid centre). */
export interface AffineParams {
  /** Rotation angles about the L, P and S axes (degrees), applied in that order (R = Rz·Ry·Rx). */
  readonly rotationDeg: Vec3;
  readonly scale: Vec3;
  /** Shears k_xy, k_xz, k_yz of the unit upper-triangular K. */
  readonly shear: Vec3;
  readonly translationMm: Vec3;
  readonly centre: Vec3;
}

/** T(x) = L · (x + d(x)) + o (fixed → moving, LPS mm). */
export interface TrueTransform {
  /** 3×3 row-major linear part. */
  readonly linear: readonly number[];
  readonly offset: Vec3;
  readonly bumps: readonly Bump[];
}

/** The pairs of issue #16, in bench order. */
export const PAIR_KINDS = ['affine', 'deformable', 'combined', 'modality'] as const;
export type PairKind = (typeof PAIR_KINDS)[number];

/** One synthetic pair in memory. */
export interface Pair {
  readonly name: PairKind;
  readonly description: string;
  readonly transform: TrueTransform;
  readonly fixed: ScalarVolume;
  readonly fixedLabels: LabelVolume;
  readonly moving: ScalarVolume;
  readonly movingLabels: LabelVolume;
  /** u(x) = T(x) - x on the fixed grid, 3 channels (LPS mm). */
  readonly trueDisplacement: GridField;
  /** The moving image is CT-like ('CT') or remapped through {@link MR_LIKE_TABLE} ('MR-like'). */
  readonly movingModality: 'CT' | 'MR-like';
  /** Largest |T(x) - y| of the numerical inverse over the moving voxels (mm). */
  readonly inverseResidualMm: number;
}

/** The pair's files (NIfTI-1, gzipped), as every registrar receives them. */
export interface PairFiles {
  readonly name: PairKind;
  readonly dir: string;
  readonly fixed: string;
  readonly moving: string;
  readonly fixedLabels: string;
  readonly movingLabels: string;
  /** True displacement on the fixed grid: dims X×Y×Z×1×3, intent VECTOR, float32, LPS mm. */
  readonly trueDisplacement: string;
  readonly movingModality: 'CT' | 'MR-like';
}

// ---------------------------------------------------------------------------------------------------------
// The true transform

/** d(x) at `x` into `out`; with `grad` (row-major ∂d_r/∂x_c) its Jacobian too. */
export function bumpsAt(bumps: readonly Bump[], x: Vec3, out: Vec3, grad?: number[]): Vec3 {
  out[0] = out[1] = out[2] = 0;
  if (grad) grad.fill(0);
  for (const b of bumps) {
    const dx = x[0] - b.centre[0];
    const dy = x[1] - b.centre[1];
    const dz = x[2] - b.centre[2];
    const s2 = b.sigma * b.sigma;
    const g = Math.exp(-(dx * dx + dy * dy + dz * dz) / (2 * s2));
    out[0] += b.amplitude[0] * g;
    out[1] += b.amplitude[1] * g;
    out[2] += b.amplitude[2] * g;
    if (grad) {
      const q = [-dx / s2, -dy / s2, -dz / s2];
      for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) grad[3 * r + c]! += b.amplitude[r]! * g * q[c]!;
    }
  }
  return out;
}

/** T(x) = L · (x + d(x)) + o. */
export function applyTransform(t: TrueTransform, x: Vec3, out: Vec3): Vec3 {
  const d: Vec3 = [0, 0, 0];
  bumpsAt(t.bumps, x, d);
  const z: Vec3 = [x[0] + d[0], x[1] + d[1], x[2] + d[2]];
  const L = t.linear;
  out[0] = L[0]! * z[0] + L[1]! * z[1] + L[2]! * z[2] + t.offset[0];
  out[1] = L[3]! * z[0] + L[4]! * z[1] + L[5]! * z[2] + t.offset[1];
  out[2] = L[6]! * z[0] + L[7]! * z[1] + L[8]! * z[2] + t.offset[2];
  return out;
}

/** Precomputed inverse of a {@link TrueTransform}: x with T(x) = y (Newton on the deformable part). */
export function inverter(t: TrueTransform): (y: Vec3, out: Vec3) => number {
  const li = inv3(t.linear);
  const d: Vec3 = [0, 0, 0];
  const grad = new Array<number>(9).fill(0);
  const z: Vec3 = [0, 0, 0];
  return (y, out) => {
    const a = y[0] - t.offset[0];
    const b = y[1] - t.offset[1];
    const c = y[2] - t.offset[2];
    z[0] = li[0]! * a + li[1]! * b + li[2]! * c;
    z[1] = li[3]! * a + li[4]! * b + li[5]! * c;
    z[2] = li[6]! * a + li[7]! * b + li[8]! * c;
    if (t.bumps.length === 0) {
      out[0] = z[0];
      out[1] = z[1];
      out[2] = z[2];
      return 0;
    }
    // Start from z - d(z), then Newton: x ← x - (I + ∇d(x))⁻¹ (x + d(x) - z).
    bumpsAt(t.bumps, z, d);
    out[0] = z[0] - d[0];
    out[1] = z[1] - d[1];
    out[2] = z[2] - d[2];
    const r: Vec3 = [0, 0, 0];
    for (let it = 0; it < 50; it++) {
      bumpsAt(t.bumps, out, d, grad);
      r[0] = out[0] + d[0] - z[0];
      r[1] = out[1] + d[1] - z[1];
      r[2] = out[2] + d[2] - z[2];
      if (Math.hypot(r[0], r[1], r[2]) < 1e-7) break;
      grad[0]! += 1;
      grad[4]! += 1;
      grad[8]! += 1;
      const gi = inv3(grad);
      out[0] -= gi[0]! * r[0] + gi[1]! * r[1] + gi[2]! * r[2];
      out[1] -= gi[3]! * r[0] + gi[4]! * r[1] + gi[5]! * r[2];
      out[2] -= gi[6]! * r[0] + gi[7]! * r[1] + gi[8]! * r[2];
    }
    // Residual in moving space: |T(x) - y| = |L r|.
    const L = t.linear;
    return Math.hypot(
      L[0]! * r[0] + L[1]! * r[1] + L[2]! * r[2],
      L[3]! * r[0] + L[4]! * r[1] + L[5]! * r[2],
      L[6]! * r[0] + L[7]! * r[1] + L[8]! * r[2],
    );
  };
}

/** u(x) = T(x) - x at every fixed voxel centre, 3 channels. */
export function displacementOf(t: TrueTransform, grid: Grid): GridField {
  const n = voxelCount(grid);
  const data = new Float32Array(3 * n);
  const [X, Y, Z] = grid.dims;
  const x: Vec3 = [0, 0, 0];
  const y: Vec3 = [0, 0, 0];
  for (let k = 0, p = 0; k < Z; k++)
    for (let j = 0; j < Y; j++)
      for (let i = 0; i < X; i++, p++) {
        voxelToWorld(grid, i, j, k, x);
        applyTransform(t, x, y);
        data[p] = y[0] - x[0];
        data[n + p] = y[1] - x[1];
        data[2 * n + p] = y[2] - x[2];
      }
  return { grid, channels: 3, data };
}

/** Smallest det(I + ∇d) over the grid's voxel centres (analytic). */
export function minBumpJacobian(bumps: readonly Bump[], grid: Grid): number {
  const [X, Y, Z] = grid.dims;
  const x: Vec3 = [0, 0, 0];
  const d: Vec3 = [0, 0, 0];
  const g = new Array<number>(9).fill(0);
  let worst = Infinity;
  for (let k = 0; k < Z; k++)
    for (let j = 0; j < Y; j++)
      for (let i = 0; i < X; i++) {
        bumpsAt(bumps, voxelToWorld(grid, i, j, k, x), d, g);
        g[0]! += 1;
        g[4]! += 1;
        g[8]! += 1;
        worst = Math.min(worst, det3(g));
      }
  return worst;
}

// ---------------------------------------------------------------------------------------------------------
// Drawing the transforms

/** Parameters of the draws (documented in the bench's output). */
export const PAIR_PARAMS = {
  /** |rotation| about S (axial plane) in [4, 8]°, about L and P within ±3°. */
  rotationInPlaneDeg: [4, 8] as const,
  rotationThroughPlaneDeg: 3,
  /** Per-axis scale 1 ± 0.05. */
  scale: 0.05,
  /** Shears of K within ±0.03. */
  shear: 0.03,
  /** Translation: a random direction, length in [5, 10] mm. */
  translationMm: [5, 10] as const,
  /**
   * Gaussian bumps of the smooth warp, centred on random organ voxels: count, σ range (mm), then
   * scaled to this mean |d| over the organs unless the largest |d| over the grid would pass the cap.
   */
  bumps: 10,
  sigmaMm: [45, 65] as const,
  organMeanMm: 4.5,
  maxDisplacementMm: 10,
  /** The warp is scaled down until det(I + ∇d) ≥ this everywhere. */
  minJacobian: 0.5,
} as const;

/** A seeded draw of the affine about `centre`. */
export function drawAffine(
  rand: () => number,
  centre: Vec3,
): { params: AffineParams; linear: number[]; offset: Vec3 } {
  const P = PAIR_PARAMS;
  const sym = (m: number): number => (2 * rand() - 1) * m;
  const sign = rand() < 0.5 ? -1 : 1;
  const [lo, hi] = P.rotationInPlaneDeg;
  const rotationDeg: Vec3 = [
    sym(P.rotationThroughPlaneDeg),
    sym(P.rotationThroughPlaneDeg),
    sign * (lo + (hi - lo) * rand()),
  ];
  const scale: Vec3 = [1 + sym(P.scale), 1 + sym(P.scale), 1 + sym(P.scale)];
  const shear: Vec3 = [sym(P.shear), sym(P.shear), sym(P.shear)];
  const dir = randomUnit(rand);
  const len = P.translationMm[0] + (P.translationMm[1] - P.translationMm[0]) * rand();
  const translationMm: Vec3 = [dir[0] * len, dir[1] * len, dir[2] * len];
  const [ax, ay, az] = rotationDeg.map((d) => (d * Math.PI) / 180) as Vec3;
  const rx = [1, 0, 0, 0, Math.cos(ax), -Math.sin(ax), 0, Math.sin(ax), Math.cos(ax)];
  const ry = [Math.cos(ay), 0, Math.sin(ay), 0, 1, 0, -Math.sin(ay), 0, Math.cos(ay)];
  const rz = [Math.cos(az), -Math.sin(az), 0, Math.sin(az), Math.cos(az), 0, 0, 0, 1];
  const R = mat3Mul(rz, mat3Mul(ry, rx));
  const K = [1, shear[0], shear[1], 0, 1, shear[2], 0, 0, 1];
  const S = [scale[0], 0, 0, 0, scale[1], 0, 0, 0, scale[2]];
  const linear = mat3Mul(R, mat3Mul(K, S));
  const lc = [0, 1, 2].map(
    (r) => linear[3 * r]! * centre[0] + linear[3 * r + 1]! * centre[1] + linear[3 * r + 2]! * centre[2],
  );
  const offset: Vec3 = [0, 1, 2].map((r) => centre[r]! + translationMm[r]! - lc[r]!) as Vec3;
  return { params: { rotationDeg, scale, shear, translationMm, centre }, linear, offset };
}

function randomUnit(rand: () => number): Vec3 {
  for (;;) {
    const v: Vec3 = [2 * rand() - 1, 2 * rand() - 1, 2 * rand() - 1];
    const n = Math.hypot(...v);
    if (n > 0.1 && n <= 1) return [v[0] / n, v[1] / n, v[2] / n];
  }
}

/** World positions of the voxels holding any of `values` (NIfTI order). */
export function labelPositions(labels: LabelVolume, values: readonly number[]): Vec3[] {
  const set = new Set(values);
  const out: Vec3[] = [];
  const [X, Y, Z] = labels.grid.dims;
  for (let k = 0, p = 0; k < Z; k++)
    for (let j = 0; j < Y; j++)
      for (let i = 0; i < X; i++, p++)
        if (set.has(labels.data[p]!)) out.push(voxelToWorld(labels.grid, i, j, k, [0, 0, 0]));
  if (out.length === 0) throw new Error('none of the organs is labelled');
  return out;
}

/**
 * A seeded smooth warp: {@link PAIR_PARAMS}.bumps Gaussian bumps, each centred on a random organ voxel
 * (of `organs`), in a random direction, scaled so the mean |d| over the organ voxels is
 * `organMeanMm` unless that takes the largest |d| over the grid past `maxDisplacementMm` (then to
 * that), then shrunk by 10% steps while min det(I + ∇d) < `minJacobian` (no folding by construction).
 */
export function drawBumps(
  rand: () => number,
  grid: Grid,
  organs: readonly Vec3[],
): { bumps: Bump[]; maxMm: number; organMeanMm: number; minJacobian: number; shrinks: number } {
  const P = PAIR_PARAMS;
  const raw: Bump[] = [];
  for (let b = 0; b < P.bumps; b++) {
    const centre: Vec3 = [...organs[Math.floor(rand() * organs.length)]!];
    const sigma = P.sigmaMm[0] + (P.sigmaMm[1] - P.sigmaMm[0]) * rand();
    const u = randomUnit(rand);
    const m = 0.5 + 0.5 * rand();
    raw.push({ centre, sigma, amplitude: [u[0] * m, u[1] * m, u[2] * m] });
  }
  const scaled = (f: number): Bump[] =>
    raw.map((b) => ({ ...b, amplitude: b.amplitude.map((v) => v * f) as Vec3 }));
  const maxOf = (bumps: readonly Bump[]): number => {
    const f = displacementOf({ linear: [1, 0, 0, 0, 1, 0, 0, 0, 1], offset: [0, 0, 0], bumps }, grid);
    const n = voxelCount(grid);
    let m = 0;
    for (let p = 0; p < n; p++) m = Math.max(m, Math.hypot(f.data[p]!, f.data[n + p]!, f.data[2 * n + p]!));
    return m;
  };
  const organMean = (bumps: readonly Bump[]): number => {
    const d: Vec3 = [0, 0, 0];
    let sum = 0;
    for (const x of organs) sum += Math.hypot(...bumpsAt(bumps, x, d));
    return sum / organs.length;
  };
  let factor = Math.min(P.organMeanMm / organMean(raw), P.maxDisplacementMm / maxOf(raw));
  let bumps = scaled(factor);
  let minJ = minBumpJacobian(bumps, grid);
  let shrinks = 0;
  while (minJ < P.minJacobian) {
    factor *= 0.9;
    shrinks++;
    bumps = scaled(factor);
    minJ = minBumpJacobian(bumps, grid);
  }
  return { bumps, maxMm: maxOf(bumps), organMeanMm: organMean(bumps), minJacobian: minJ, shrinks };
}

// ---------------------------------------------------------------------------------------------------------
// The intensity table of the modality-change pair

/**
 * HU → MR-like (T1-like) intensity, piecewise linear, non-monotonic: fat becomes brighter than soft
 * tissue, water/fluid darker than both, bone dark, air stays dark. CT order (air < fat < water <
 * soft tissue < bone) becomes air < bone < fluid < soft tissue < fat; constant beyond the ends.
 */
export const MR_LIKE_TABLE: readonly (readonly [number, number])[] = [
  [-1024, 10],
  [-600, 40],
  [-150, 700],
  [-60, 900],
  [-15, 350],
  [15, 150],
  [40, 420],
  [70, 560],
  [130, 480],
  [250, 220],
  [600, 80],
  [1500, 40],
];

/** `MR_LIKE_TABLE` (or `table`) at `hu`, linear between the knots. */
export function remapIntensity(hu: number, table = MR_LIKE_TABLE): number {
  const first = table[0]!;
  if (hu <= first[0]) return first[1];
  for (let t = 1; t < table.length; t++) {
    const [x1, y1] = table[t]!;
    if (hu <= x1) {
      const [x0, y0] = table[t - 1]!;
      return y0 + ((hu - x0) / (x1 - x0)) * (y1 - y0);
    }
  }
  return table[table.length - 1]![1];
}

// ---------------------------------------------------------------------------------------------------------
// Pairs

/**
 * The moving image (and labels) on the fixed grid: `moving(y) = image(T⁻¹(y))`, B-spline
 * ({@link SPLINE_DEGREE}) for the image, nearest for the labels; `pad` / 0 where T⁻¹(y) leaves the grid.
 */
export function warpThroughInverse(
  t: TrueTransform,
  image: ScalarVolume,
  labels: LabelVolume | null,
  pad: number,
): { moving: Float32Array; movingLabels: Uint8Array | null; residualMm: number } {
  const g = image.grid;
  const n = voxelCount(g);
  const w2v = worldToVoxel(g);
  const inv = inverter(t);
  const coeffs = splineCoefficients(image.data, g.dims, SPLINE_DEGREE);
  const moving = new Float32Array(n);
  const movingLabels = labels ? new Uint8Array(n) : null;
  const [X, Y, Z] = g.dims;
  const y: Vec3 = [0, 0, 0];
  const x: Vec3 = [0, 0, 0];
  let residualMm = 0;
  for (let k = 0, p = 0; k < Z; k++)
    for (let j = 0; j < Y; j++)
      for (let i = 0; i < X; i++, p++) {
        voxelToWorld(g, i, j, k, y);
        residualMm = Math.max(residualMm, inv(y, x));
        moving[p] = sampleSpline(coeffs, g, w2v, x, pad, SPLINE_DEGREE);
        if (movingLabels && labels) movingLabels[p] = sampleNearest(labels.data, labels.grid, w2v, x);
      }
  return { moving, movingLabels, residualMm };
}

/** What {@link makePairs} drew, for the record. */
export interface PairDraws {
  readonly seed: number;
  readonly affine: AffineParams;
  readonly bumps: readonly Bump[];
  readonly bumpMaxMm: number;
  readonly bumpOrganMeanMm: number;
  readonly bumpMinJacobian: number;
  readonly bumpShrinks: number;
}

/** The fixed image as the moving image's modality shows it (table-mapped for 'MR-like'). */
export function referenceImage(fixed: ScalarVolume, modality: 'CT' | 'MR-like'): ScalarVolume {
  return modality === 'CT'
    ? fixed
    : { grid: fixed.grid, data: Float32Array.from(fixed.data, (v) => remapIntensity(v)) };
}

/**
 * The four pairs of issue #16 from one labelled CT, seeded: `affine` (T = the drawn affine),
 * `deformable` (T = x + d(x)), `combined` (T = affine ∘ (x + d(x)), the same draws) and `modality`
 * (the combined transform; the CT is remapped through {@link MR_LIKE_TABLE} before it is warped, so
 * the moving image is exactly `table(CT) ∘ T⁻¹`).
 */
export function makePairs(
  fixed: ScalarVolume,
  labels: LabelVolume,
  seed: number,
  only?: readonly PairKind[],
): { pairs: Pair[]; draws: PairDraws } {
  const rand = mulberry32(seed);
  const g = fixed.grid;
  const [X, Y, Z] = g.dims;
  const centre = voxelToWorld(g, (X - 1) / 2, (Y - 1) / 2, (Z - 1) / 2, [0, 0, 0]);
  const aff = drawAffine(rand, centre);
  const organVoxels = labelPositions(
    labels,
    ORGANS.map((o) => o.value),
  );
  const warp = drawBumps(rand, g, organVoxels);
  const identity = [1, 0, 0, 0, 1, 0, 0, 0, 1];
  const transforms: Record<PairKind, TrueTransform> = {
    affine: { linear: aff.linear, offset: aff.offset, bumps: [] },
    deformable: { linear: identity, offset: [0, 0, 0], bumps: warp.bumps },
    combined: { linear: aff.linear, offset: aff.offset, bumps: warp.bumps },
    modality: { linear: aff.linear, offset: aff.offset, bumps: warp.bumps },
  };
  const descriptions: Record<PairKind, string> = {
    affine: 'pure affine (rotation, scale, shear, translation about the grid centre)',
    deformable: `smooth deformable (${warp.bumps.length} Gaussian bumps, max ${warp.maxMm.toFixed(1)} mm, mean ${warp.organMeanMm.toFixed(1)} mm in the organs)`,
    combined: 'the affine after the deformable warp: T(x) = A(x + d(x))',
    modality: 'the combined transform; moving = MR-like table (non-monotonic) of the CT, warped',
  };
  const pairs: Pair[] = [];
  for (const name of PAIR_KINDS) {
    if (only && !only.includes(name)) continue;
    const t = transforms[name];
    const movingModality = name === 'modality' ? 'MR-like' : 'CT';
    const pad = movingModality === 'CT' ? AIR_HU : remapIntensity(AIR_HU);
    const w = warpThroughInverse(t, referenceImage(fixed, movingModality), labels, pad);
    pairs.push({
      name,
      description: descriptions[name],
      transform: t,
      fixed,
      fixedLabels: labels,
      moving: { grid: g, data: w.moving },
      movingLabels: { grid: g, data: w.movingLabels! },
      trueDisplacement: displacementOf(t, g),
      movingModality,
      inverseResidualMm: w.residualMm,
    });
  }
  return {
    pairs,
    draws: {
      seed,
      affine: aff.params,
      bumps: warp.bumps,
      bumpMaxMm: warp.maxMm,
      bumpOrganMeanMm: warp.organMeanMm,
      bumpMinJacobian: warp.minJacobian,
      bumpShrinks: warp.shrinks,
    },
  };
}

/** Body voxels of a CT (HU > {@link BODY_HU}) at least `margin` voxels from the grid's border. */
export function bodyMask(ct: ScalarVolume, margin: number): Uint8Array {
  const [X, Y, Z] = ct.grid.dims;
  const out = new Uint8Array(X * Y * Z);
  for (let k = margin; k < Z - margin; k++)
    for (let j = margin; j < Y - margin; j++)
      for (let i = margin; i < X - margin; i++) {
        const p = i + X * (j + Y * k);
        if (ct.data[p]! > BODY_HU) out[p] = 1;
      }
  return out;
}

/**
 * Pearson correlation of `moving` sampled (B-spline) at `map(x)` with `reference(x)` over the voxels x
 * of `mask` whose `map(x)` falls inside the moving grid.
 */
export function correlationThrough(
  reference: ScalarVolume,
  mask: Uint8Array,
  moving: ScalarVolume,
  map: (x: Vec3, out: Vec3) => unknown,
): { correlation: number; voxels: number } {
  const g = reference.grid;
  const w2v = worldToVoxel(moving.grid);
  const coeffs = splineCoefficients(moving.data, moving.grid.dims, SPLINE_DEGREE);
  const [X, Y, Z] = g.dims;
  const x: Vec3 = [0, 0, 0];
  const y: Vec3 = [0, 0, 0];
  let n = 0;
  let sa = 0;
  let sb = 0;
  let saa = 0;
  let sbb = 0;
  let sab = 0;
  for (let k = 0, p = 0; k < Z; k++)
    for (let j = 0; j < Y; j++)
      for (let i = 0; i < X; i++, p++) {
        if (!mask[p]) continue;
        map(voxelToWorld(g, i, j, k, x), y);
        const b = sampleSpline(coeffs, moving.grid, w2v, y, NaN, SPLINE_DEGREE);
        if (Number.isNaN(b)) continue;
        const a = reference.data[p]!;
        n++;
        sa += a;
        sb += b;
        saa += a * a;
        sbb += b * b;
        sab += a * b;
      }
  const cov = sab / n - (sa / n) * (sb / n);
  const va = saa / n - (sa / n) ** 2;
  const vb = sbb / n - (sb / n) ** 2;
  return { correlation: cov / Math.sqrt(va * vb), voxels: n };
}

/** Result of {@link roundTrip}. */
export interface RoundTrip {
  /** corr(moving(T(x)), fixed(x)) over body voxels (fixed table-mapped for 'MR-like'). */
  readonly correlation: number;
  /**
   * The same round trip for the fixed image low-passed by a Gaussian of σ = {@link BAND_LIMIT_SIGMA_MM}
   * (warped and sampled back the same way): the check of the geometry without the interpolation loss
   * of a 3 mm CT's near-Nyquist content, which no resampling can carry through twice.
   */
  readonly bandLimitedCorrelation: number;
  /** Controls: moving sampled at T⁻¹(x) (the wrong direction) and at x (no transform). */
  readonly wrongDirectionCorrelation: number;
  readonly identityCorrelation: number;
  /** Body voxels compared (fixed > BODY_HU, ≥ ROUND_TRIP_MARGIN voxels from the border, T(x) inside). */
  readonly voxels: number;
  /** Per organ: Dice of movingLabels(T(x)) (nearest) with the fixed labels, where T(x) is inside the moving grid. */
  readonly labelDice: Record<string, number>;
}

/** Low-pass σ (mm) of {@link RoundTrip.bandLimitedCorrelation}. */
export const BAND_LIMIT_SIGMA_MM = 3;
/** Border voxels left out of the round trip (the quintic spline reaches 3 voxels). */
export const ROUND_TRIP_MARGIN = 3;

/** Samples the moving image and labels back through T and compares them with the fixed ones. */
export function roundTrip(pair: Pair): RoundTrip {
  const t = pair.transform;
  const mask = bodyMask(pair.fixed, ROUND_TRIP_MARGIN);
  const reference = referenceImage(pair.fixed, pair.movingModality);
  const forward = (x: Vec3, out: Vec3): Vec3 => applyTransform(t, x, out);
  const main = correlationThrough(reference, mask, pair.moving, forward);
  const inv = inverter(t);
  const wrong = correlationThrough(reference, mask, pair.moving, inv);
  const ident = correlationThrough(reference, mask, pair.moving, (x, out) => out.splice(0, 3, ...x));
  const smooth = gaussianSmooth(reference, BAND_LIMIT_SIGMA_MM);
  const pad = pair.movingModality === 'CT' ? AIR_HU : remapIntensity(AIR_HU);
  const smoothMoving = warpThroughInverse(t, smooth, null, pad).moving;
  const band = correlationThrough(smooth, mask, { grid: pair.moving.grid, data: smoothMoving }, forward);
  // Labels: only where T(x) lands inside the moving grid (elsewhere no moving voxel holds the answer).
  const [X, Y, Z] = pair.moving.grid.dims;
  const w2v = worldToVoxel(pair.moving.grid);
  const inside = new Uint8Array(X * Y * Z);
  const warped = warpLabels(pair.movingLabels, pair.fixed.grid, (x, p, out) => {
    applyTransform(t, x, out);
    const f = [0, 4, 8].map(
      (r) => w2v[r]! * out[0] + w2v[r + 1]! * out[1] + w2v[r + 2]! * out[2] + w2v[r + 3]!,
    );
    inside[p] =
      f[0]! >= 0 && f[0]! <= X - 1 && f[1]! >= 0 && f[1]! <= Y - 1 && f[2]! >= 0 && f[2]! <= Z - 1 ? 1 : 0;
  });
  const truth = Uint8Array.from(pair.fixedLabels.data, (v, p) => (inside[p] ? v : 0));
  const pred = Uint8Array.from(warped, (v, p) => (inside[p] ? v : 0));
  const labelDice: Record<string, number> = {};
  for (const o of ORGANS) labelDice[o.name] = dice(pred, truth, o.value);
  return {
    correlation: main.correlation,
    bandLimitedCorrelation: band.correlation,
    wrongDirectionCorrelation: wrong.correlation,
    identityCorrelation: ident.correlation,
    voxels: main.voxels,
    labelDice,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Files

/**
 * Reads a NIfTI as a field on its canonical grid (dims = (cols, rows, slices), LPS affine), one
 * channel per entry of `volumes` (the 3D volume indices of a 4D/5D file; `[0]` for 3D). With
 * `storedOrder`, the file must already be stored in canonical order (so the grid is its own input
 * grid, as for files this bench and elastix write).
 */
export async function readGridField(
  path: string,
  volumes: readonly number[] = [0],
  storedOrder = false,
): Promise<GridField> {
  let grid: Grid | null = null;
  let data = new Float32Array(0);
  for (let c = 0; c < volumes.length; c++) {
    const v = await openVolume({ kind: 'path', path }, { volumeIndex: volumes[c] });
    const geo = v.geometry;
    if (storedOrder) {
      const { col, row, slice } = geo.axes;
      const ok = col.inputAxis === 0 && row.inputAxis === 1 && slice.inputAxis === 2;
      if (!ok || col.flip || row.flip || slice.flip)
        throw new Error(
          `${path}: stored as ${geo.inputAxcodes}, not in the canonical (LPS) order the bench writes`,
        );
    }
    const [S, R, C] = geo.canonicalDims;
    if (!grid) {
      grid = { dims: [C, R, S], affine: [...geo.canonicalAffine] };
      data = new Float32Array(volumes.length * C * R * S);
    }
    const n = C * R * S;
    const buf = new Float64Array(R * C);
    for (let s = 0; s < S; s++) {
      await v.readCanonicalSlice(s, buf);
      data.set(buf, c * n + s * R * C);
    }
  }
  if (!grid) throw new Error('no volumes requested');
  return { grid, channels: volumes.length, data };
}

/** The shared TotalSegmentator CT and its labels on the CT's canonical grid. */
export async function loadStudy(dir: string): Promise<{ fixed: ScalarVolume; labels: LabelVolume }> {
  const names = JSON.parse(readFileSync(join(dir, 'labels_total.json'), 'utf8')) as Record<string, string>;
  for (const o of ORGANS) {
    if (names[String(o.value)] !== o.name)
      throw new Error(`labels_total.json: ${o.value} is '${names[String(o.value)]}', not '${o.name}'`);
  }
  const ct = await readGridField(join(dir, 'example_ct_sm.nii.gz'));
  const seg = await readGridField(join(dir, 'example_seg.nii.gz'));
  if (
    seg.grid.dims.some((d, i) => d !== ct.grid.dims[i]) ||
    seg.grid.affine.some((v, i) => Math.abs(v - ct.grid.affine[i]!) > 1e-3)
  )
    throw new Error('example_seg is not on the CT grid');
  return {
    fixed: { grid: ct.grid, data: ct.data },
    labels: { grid: ct.grid, data: Uint8Array.from(seg.data, (v) => Math.round(v)) },
  };
}

const NIFTI_FLOAT32 = { datatypeCode: 16, bitpix: 32 } as const;
const NIFTI_UINT8 = { datatypeCode: 2, bitpix: 8 } as const;
const NIFTI_INTENT_VECTOR = 1007;

/** NIfTI-1 bytes (gzipped) of a field on its grid; vector fields as X×Y×Z×1×C with intent VECTOR. */
export function niftiOf(
  field: { grid: Grid; channels?: number; data: Float32Array | Uint8Array },
  descrip = '',
): Uint8Array {
  const channels = field.channels ?? 1;
  const type = field.data instanceof Uint8Array ? NIFTI_UINT8 : NIFTI_FLOAT32;
  const bytes = writeNifti({
    dims: channels === 1 ? [...field.grid.dims] : [...field.grid.dims, 1, channels],
    ...type,
    voxelBytes: new Uint8Array(field.data.buffer, field.data.byteOffset, field.data.byteLength),
    affine: flipWorldXY(field.grid.affine),
    transform: 'both',
  });
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (channels > 1) dv.setInt16(68, NIFTI_INTENT_VECTOR, true);
  const text = new TextEncoder().encode(descrip.slice(0, 79));
  bytes.set(text, 148);
  return new Uint8Array(gzipSync(bytes, { level: 1 }));
}

/** Writes a pair's five files into `dir/<name>/`. */
export async function writePair(pair: Pair, dir: string): Promise<PairFiles> {
  const d = join(dir, pair.name);
  await mkdir(d, { recursive: true });
  const files: PairFiles = {
    name: pair.name,
    dir: d,
    fixed: join(d, 'fixed.nii.gz'),
    moving: join(d, 'moving.nii.gz'),
    fixedLabels: join(d, 'fixed_labels.nii.gz'),
    movingLabels: join(d, 'moving_labels.nii.gz'),
    trueDisplacement: join(d, 'true_displacement.nii.gz'),
    movingModality: pair.movingModality,
  };
  await writeFile(files.fixed, niftiOf(pair.fixed, 'curia bench:register fixed (HU)'));
  await writeFile(files.moving, niftiOf(pair.moving, `curia bench:register moving (${pair.movingModality})`));
  await writeFile(files.fixedLabels, niftiOf(pair.fixedLabels, 'curia bench:register fixed labels'));
  await writeFile(files.movingLabels, niftiOf(pair.movingLabels, 'curia bench:register moving labels'));
  await writeFile(
    files.trueDisplacement,
    niftiOf(pair.trueDisplacement, 'true u, LPS mm: x_moving = x_fixed + u(x_fixed)'),
  );
  return files;
}
