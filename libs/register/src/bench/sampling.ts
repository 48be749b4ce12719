/**
 * Grid arithmetic and interpolation for the registration bench: world ↔ voxel maps, B-spline
 * interpolation (degree 3 or 5, exact prefilter, mirror boundaries), nearest-neighbour label
 * sampling and warping through a displacement field, Gaussian smoothing. Conventions of `../field.ts`
 * (row-major 4×4, NIfTI order, LPS mm, pull-back).
 */
import { voxelCount, type Grid, type GridField, type Mat4 } from '../field.js';

export type Vec3 = [number, number, number];

/** One scalar volume on a grid (NIfTI order). */
export interface ScalarVolume {
  readonly grid: Grid;
  readonly data: Float32Array;
}

/** One label map on a grid (NIfTI order). */
export interface LabelVolume {
  readonly grid: Grid;
  readonly data: Uint8Array;
}

// ---------------------------------------------------------------------------------------------------------
// Small linear algebra (row-major)

/** Row-major 3×3 product a·b. */
export function mat3Mul(a: readonly number[], b: readonly number[]): number[] {
  const out = new Array<number>(9).fill(0);
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 3; c++) for (let k = 0; k < 3; k++) out[3 * r + c]! += a[3 * r + k]! * b[3 * k + c]!;
  return out;
}

export function det3(m: readonly number[]): number {
  return (
    m[0]! * (m[4]! * m[8]! - m[5]! * m[7]!) -
    m[1]! * (m[3]! * m[8]! - m[5]! * m[6]!) +
    m[2]! * (m[3]! * m[7]! - m[4]! * m[6]!)
  );
}

export function inv3(m: readonly number[]): number[] {
  const d = det3(m);
  if (!(Math.abs(d) > 1e-12)) throw new Error('singular 3×3 matrix');
  const c = (a: number, b: number, e: number, f: number): number => (m[a]! * m[f]! - m[b]! * m[e]!) / d;
  return [
    c(4, 5, 7, 8),
    -c(1, 2, 7, 8),
    c(1, 2, 4, 5),
    -c(3, 5, 6, 8),
    c(0, 2, 6, 8),
    -c(0, 2, 3, 5),
    c(3, 4, 6, 7),
    -c(0, 1, 6, 7),
    c(0, 1, 3, 4),
  ];
}

/** The 3×3 part of a row-major 4×4. */
export function linearOf(m: Mat4): number[] {
  return [m[0]!, m[1]!, m[2]!, m[4]!, m[5]!, m[6]!, m[8]!, m[9]!, m[10]!];
}

/** World → voxel map of a grid as a row-major 3×4 (the inverse of its affine). */
export function worldToVoxel(grid: Grid): number[] {
  const li = inv3(linearOf(grid.affine));
  const t = [grid.affine[3]!, grid.affine[7]!, grid.affine[11]!];
  const out: number[] = [];
  for (let r = 0; r < 3; r++) {
    out.push(li[3 * r]!, li[3 * r + 1]!, li[3 * r + 2]!);
    out.push(-(li[3 * r]! * t[0]! + li[3 * r + 1]! * t[1]! + li[3 * r + 2]! * t[2]!));
  }
  return out;
}

/** World position of voxel (i, j, k). */
export function voxelToWorld(grid: Grid, i: number, j: number, k: number, out: Vec3): Vec3 {
  const a = grid.affine;
  out[0] = a[0]! * i + a[1]! * j + a[2]! * k + a[3]!;
  out[1] = a[4]! * i + a[5]! * j + a[6]! * k + a[7]!;
  out[2] = a[8]! * i + a[9]! * j + a[10]! * k + a[11]!;
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Sampling

/** Poles of the B-spline interpolation prefilters (Unser; Thévenaz et al.), by degree. */
const BSPLINE_POLES: Record<SplineDegree, readonly number[]> = {
  3: [Math.sqrt(3) - 2],
  5: [-0.4305753470999738, -0.04309628820326465],
};

/** Degree of the B-spline interpolator. */
export type SplineDegree = 3 | 5;

/** In-place B-spline prefilter of `n` samples at `stride` from `start` (mirror boundaries). */
function prefilterLine(
  c: Float32Array,
  start: number,
  n: number,
  stride: number,
  poles: readonly number[],
): void {
  if (n < 2) return;
  let gain = 1;
  for (const z of poles) gain *= (1 - z) * (1 - 1 / z);
  for (let q = 0; q < n; q++) c[start + q * stride]! *= gain;
  for (const z of poles) {
    // Causal initialisation (mirror-symmetric sum, truncated where |z|^q < 1e-10).
    const horizon = Math.min(n, Math.ceil(Math.log(1e-10) / Math.log(Math.abs(z))));
    let sum = c[start]!;
    let zn = z;
    for (let q = 1; q < horizon; q++) {
      sum += zn * c[start + q * stride]!;
      zn *= z;
    }
    c[start] = sum;
    for (let q = 1; q < n; q++) c[start + q * stride]! += z * c[start + (q - 1) * stride]!;
    const last = start + (n - 1) * stride;
    c[last] = (z / (z * z - 1)) * (z * c[start + (n - 2) * stride]! + c[last]!);
    for (let q = n - 2; q >= 0; q--) {
      const p = start + q * stride;
      c[p] = z * (c[p + stride]! - c[p]!);
    }
  }
}

/**
 * B-spline coefficients of a scalar volume (NIfTI order): {@link sampleSpline} of them interpolates
 * the volume (passes through every voxel value).
 */
export function splineCoefficients(
  data: ArrayLike<number>,
  dims: readonly [number, number, number],
  degree: SplineDegree,
): Float32Array {
  const [X, Y, Z] = dims;
  const poles = BSPLINE_POLES[degree];
  const c = Float32Array.from(data);
  for (let k = 0; k < Z; k++) for (let j = 0; j < Y; j++) prefilterLine(c, X * (j + Y * k), X, 1, poles);
  for (let k = 0; k < Z; k++) for (let i = 0; i < X; i++) prefilterLine(c, i + X * Y * k, Y, X, poles);
  for (let j = 0; j < Y; j++) for (let i = 0; i < X; i++) prefilterLine(c, i + X * j, Z, X * Y, poles);
  return c;
}

function mirror(q: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * n - 2;
  let r = Math.abs(q) % period;
  if (r >= n) r = period - r;
  return r;
}

/** B-spline weights of taps floor(x) - (degree - 1)/2 … for the fraction t = x - floor(x). */
function splineWeights(t: number, degree: SplineDegree, w: Float64Array): void {
  if (degree === 3) {
    w[3] = (t * t * t) / 6;
    w[0] = 1 / 6 + 0.5 * t * (t - 1) - w[3];
    w[2] = t + w[0] - 2 * w[3];
    w[1] = 1 - w[0] - w[2] - w[3];
    return;
  }
  let x = t;
  let x2 = x * x;
  w[5] = (x * x2 * x2) / 120;
  x2 -= x;
  const x4 = x2 * x2;
  x -= 0.5;
  const q = x2 * (x2 - 3);
  w[0] = (1 / 24) * (1 / 5 + x2 + x4) - w[5];
  let t0 = (1 / 24) * (x2 * (x2 - 5) + 46 / 5);
  let t1 = (-1 / 12) * x * (q + 4);
  w[2] = t0 + t1;
  w[3] = t0 - t1;
  t0 = (1 / 16) * (9 / 5 - q);
  t1 = (1 / 24) * x * (x4 - x2 - 5);
  w[1] = t0 + t1;
  w[4] = t0 - t1;
}

const WI = new Float64Array(6);
const WJ = new Float64Array(6);
const WK = new Float64Array(6);

/**
 * B-spline interpolation of degree `degree` at world `x` from {@link splineCoefficients}; `pad`
 * outside the grid's voxel-centre box (mirror boundaries inside it).
 */
export function sampleSpline(
  coeffs: Float32Array,
  grid: Grid,
  w2v: readonly number[],
  x: Vec3,
  pad: number,
  degree: SplineDegree,
): number {
  const [X, Y, Z] = grid.dims;
  const fi = w2v[0]! * x[0] + w2v[1]! * x[1] + w2v[2]! * x[2] + w2v[3]!;
  const fj = w2v[4]! * x[0] + w2v[5]! * x[1] + w2v[6]! * x[2] + w2v[7]!;
  const fk = w2v[8]! * x[0] + w2v[9]! * x[1] + w2v[10]! * x[2] + w2v[11]!;
  const eps = 1e-6;
  if (!(
    fi >= -eps &&
    fi <= X - 1 + eps &&
    fj >= -eps &&
    fj <= Y - 1 + eps &&
    fk >= -eps &&
    fk <= Z - 1 + eps
  ))
    return pad;
  const i0 = Math.floor(fi);
  const j0 = Math.floor(fj);
  const k0 = Math.floor(fk);
  splineWeights(fi - i0, degree, WI);
  splineWeights(fj - j0, degree, WJ);
  splineWeights(fk - k0, degree, WK);
  const taps = degree + 1;
  const back = (degree - 1) / 2;
  let v = 0;
  for (let c = 0; c < taps; c++) {
    const kk = X * Y * mirror(k0 - back + c, Z);
    for (let b = 0; b < taps; b++) {
      const jj = kk + X * mirror(j0 - back + b, Y);
      let row = 0;
      for (let a = 0; a < taps; a++) row += WI[a]! * coeffs[jj + mirror(i0 - back + a, X)]!;
      v += WK[c]! * WJ[b]! * row;
    }
  }
  return v;
}

/** Nearest-voxel sample of a label map at world `x`; 0 outside the grid. */
export function sampleNearest(
  labels: ArrayLike<number>,
  grid: Grid,
  w2v: readonly number[],
  x: Vec3,
): number {
  const [X, Y, Z] = grid.dims;
  const i = Math.round(w2v[0]! * x[0] + w2v[1]! * x[1] + w2v[2]! * x[2] + w2v[3]!);
  const j = Math.round(w2v[4]! * x[0] + w2v[5]! * x[1] + w2v[6]! * x[2] + w2v[7]!);
  const k = Math.round(w2v[8]! * x[0] + w2v[9]! * x[1] + w2v[10]! * x[2] + w2v[11]!);
  if (i < 0 || i >= X || j < 0 || j >= Y || k < 0 || k >= Z) return 0;
  return labels[i + X * (j + Y * k)]!;
}

/** Labels on `grid` (nearest): `out[p] = labels(map(x_p))`, x_p the world position of voxel p; 0 outside. */
export function warpLabels(
  labels: LabelVolume,
  grid: Grid,
  map: (x: Vec3, p: number, out: Vec3) => unknown,
): Uint8Array {
  const [X, Y, Z] = grid.dims;
  const w2v = worldToVoxel(labels.grid);
  const out = new Uint8Array(X * Y * Z);
  const x: Vec3 = [0, 0, 0];
  const y: Vec3 = [0, 0, 0];
  for (let k = 0, p = 0; k < Z; k++)
    for (let j = 0; j < Y; j++)
      for (let i = 0; i < X; i++, p++) {
        map(voxelToWorld(grid, i, j, k, x), p, y);
        out[p] = sampleNearest(labels.data, labels.grid, w2v, y);
      }
  return out;
}

/**
 * Warps a moving label map onto the fixed grid through a displacement field (nearest neighbour):
 * `out(x) = labels(x + u(x))`. For registrars that return a field and leave the labels to the bench.
 */
export function warpLabelsNearest(labels: LabelVolume, displacement: GridField): Uint8Array {
  const n = voxelCount(displacement.grid);
  const u = displacement.data;
  return warpLabels(labels, displacement.grid, (x, p, out) => {
    out[0] = x[0] + u[p]!;
    out[1] = x[1] + u[n + p]!;
    out[2] = x[2] + u[2 * n + p]!;
  });
}

/** Gaussian low-pass of a scalar volume, σ in mm along every axis (separable, truncated at 3σ, mirror). */
export function gaussianSmooth(image: ScalarVolume, sigmaMm: number): ScalarVolume {
  const dims = image.grid.dims;
  const a = image.grid.affine;
  const strides = [1, dims[0], dims[0] * dims[1]];
  let cur = Float32Array.from(image.data);
  for (let axis = 0; axis < 3; axis++) {
    const n = dims[axis]!;
    const spacing = Math.hypot(a[axis]!, a[4 + axis]!, a[8 + axis]!);
    const s = sigmaMm / spacing;
    const r = Math.max(1, Math.ceil(3 * s));
    const w = Array.from({ length: 2 * r + 1 }, (_, q) => Math.exp(-((q - r) ** 2) / (2 * s * s)));
    const sum = w.reduce((x, y) => x + y, 0);
    const stride = strides[axis]!;
    const next = new Float32Array(cur.length);
    for (let p = 0; p < cur.length; p++) {
      const q0 = Math.floor(p / stride) % n;
      let v = 0;
      for (let t = -r; t <= r; t++) v += w[t + r]! * cur[p + (mirror(q0 + t, n) - q0) * stride]!;
      next[p] = v / sum;
    }
    cur = next;
  }
  return { grid: image.grid, data: cur };
}
