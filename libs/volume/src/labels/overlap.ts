/**
 * Overlap and surface-distance measures between label maps on one grid (NIfTI order: i fastest).
 * HD95 follows the common definition used by Learn2Reg's evaluation: surface voxels of each mask
 * (foreground voxels with a background 6-neighbour, the grid border counting as background),
 * distances in millimetres from every surface voxel of one mask to the nearest surface voxel of
 * the other (exact Euclidean distance transform, anisotropic spacing), the 95th percentile in each
 * direction, and the larger of the two. (Learn2Reg weights surface points by their surfel area;
 * on near-isotropic grids the difference is small.)
 */

import { CuriaError } from '@curia/errors';

/**
 * Dice 2|A ∩ B| / (|A| + |B|) of label `value` in two label maps (or of the voxels whose label is any
 * of `value`, e.g. both kidneys as one organ); 1 when both are empty. INVALID_ARGUMENT when the maps
 * differ in size.
 */
export function dice(
  pred: ArrayLike<number>,
  truth: ArrayLike<number>,
  value: number | readonly number[],
): number {
  if (pred.length !== truth.length) {
    throw new CuriaError('INVALID_ARGUMENT', `label maps differ in size: ${pred.length} vs ${truth.length}`);
  }
  const set = typeof value === 'number' ? undefined : new Set(value);
  const is = set ? (v: number): boolean => set.has(v) : (v: number): boolean => v === value;
  let a = 0;
  let b = 0;
  let both = 0;
  for (let i = 0; i < truth.length; i++) {
    const p = is(pred[i]!);
    const t = is(truth[i]!);
    if (p) a++;
    if (t) b++;
    if (p && t) both++;
  }
  return a + b === 0 ? 1 : (2 * both) / (a + b);
}

/** Voxels of `value` that touch background (6-neighbourhood; the grid border counts as background). */
export function surfaceOf(
  labels: ArrayLike<number>,
  dims: readonly [number, number, number],
  value: number,
): Uint8Array {
  const [n0, n1, n2] = dims;
  const out = new Uint8Array(n0 * n1 * n2);
  const s1 = n0;
  const s2 = n0 * n1;
  for (let k = 0; k < n2; k++)
    for (let j = 0; j < n1; j++)
      for (let i = 0; i < n0; i++) {
        const p = i + s1 * j + s2 * k;
        if (labels[p] !== value) continue;
        const edge =
          i === 0 ||
          i === n0 - 1 ||
          j === 0 ||
          j === n1 - 1 ||
          k === 0 ||
          k === n2 - 1 ||
          labels[p - 1] !== value ||
          labels[p + 1] !== value ||
          labels[p - s1] !== value ||
          labels[p + s1] !== value ||
          labels[p - s2] !== value ||
          labels[p + s2] !== value;
        if (edge) out[p] = 1;
      }
  return out;
}

/**
 * 1-D squared distance transform (Felzenszwalb & Huttenlocher) of `f` sampled every `step` mm,
 * in place over `n` values read and written at `get`/`set` offsets.
 */
function edt1d(
  f: Float64Array,
  n: number,
  step: number,
  d: Float64Array,
  v: Int32Array,
  z: Float64Array,
): void {
  let k = 0;
  v[0] = 0;
  z[0] = -Infinity;
  z[1] = Infinity;
  const s2 = step * step;
  for (let q = 1; q < n; q++) {
    if (f[q] === Infinity) continue;
    if (f[v[k]!] === Infinity) {
      v[k] = q;
      continue;
    }
    let s: number;
    for (;;) {
      const r = v[k]!;
      s = (f[q]! + s2 * q * q - (f[r]! + s2 * r * r)) / (2 * s2 * (q - r));
      if (s <= z[k]! && k > 0) k--;
      else break;
    }
    if (s <= z[k]!) {
      v[k] = q;
      continue;
    }
    k++;
    v[k] = q;
    z[k] = s;
    z[k + 1] = Infinity;
  }
  if (f[v[0]] === Infinity) {
    d.fill(Infinity, 0, n);
    return;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    while (z[k + 1]! < q) k++;
    const r = v[k]!;
    d[q] = s2 * (q - r) * (q - r) + f[r]!;
  }
}

/** Squared Euclidean distance (mm²) of every voxel to the nearest voxel where `sites` is set. */
export function squaredDistanceTo(
  sites: Uint8Array,
  dims: readonly [number, number, number],
  spacing: readonly [number, number, number],
): Float64Array {
  const [n0, n1, n2] = dims;
  const dist = new Float64Array(n0 * n1 * n2);
  for (let p = 0; p < dist.length; p++) dist[p] = sites[p] ? 0 : Infinity;
  const m = Math.max(n0, n1, n2);
  const f = new Float64Array(m);
  const d = new Float64Array(m);
  const v = new Int32Array(m);
  const z = new Float64Array(m + 1);
  const strides = [1, n0, n0 * n1];
  for (let axis = 0; axis < 3; axis++) {
    const n = dims[axis]!;
    const stride = strides[axis]!;
    const others = [0, 1, 2].filter((a) => a !== axis) as [number, number];
    const [a, b] = others;
    for (let y = 0; y < dims[b]!; y++)
      for (let x = 0; x < dims[a]!; x++) {
        const base = x * strides[a]! + y * strides[b]!;
        for (let q = 0; q < n; q++) f[q] = dist[base + q * stride]!;
        edt1d(f, n, spacing[axis]!, d, v, z);
        for (let q = 0; q < n; q++) dist[base + q * stride] = d[q]!;
      }
  }
  return dist;
}

/** Linear-interpolated percentile (0..100) of `values` (any order; NaN when empty). */
export function percentile(values: Float64Array, p: number): number {
  const sorted = Float64Array.from(values).sort();
  if (sorted.length === 0) return NaN;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

/**
 * 95th-percentile symmetric surface distance (mm) between label `value` in two label maps;
 * undefined when either is empty.
 */
export function hd95(
  pred: ArrayLike<number>,
  truth: ArrayLike<number>,
  value: number,
  dims: readonly [number, number, number],
  spacing: readonly [number, number, number],
): number | undefined {
  const sp = surfaceOf(pred, dims, value);
  const st = surfaceOf(truth, dims, value);
  const directed = (from: Uint8Array, to: Uint8Array): Float64Array | null => {
    const dist = squaredDistanceTo(to, dims, spacing);
    const out: number[] = [];
    for (let p = 0; p < from.length; p++) if (from[p]) out.push(Math.sqrt(dist[p]!));
    return out.length ? Float64Array.from(out) : null;
  };
  const ab = directed(sp, st);
  const ba = directed(st, sp);
  if (!ab || !ba) return undefined;
  return Math.max(percentile(ab, 95), percentile(ba, 95));
}
