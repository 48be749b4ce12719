import { percentile } from '@curia/volume';

/**
 * The pure parts of `segment-bench`: slice selection, the raw pixel-patch "tokens", the
 * intensity-threshold baseline, the largest-component filter and 3D Dice over a set of slices.
 * Predictions and truths are class indices per canonical pixel (0 = background), one array per slice.
 */

/** `count` evenly spaced members of `candidates` (in order): positions ⌊(i + ½)·n/count⌋, i = 0..count−1. */
export function evenlySpaced(candidates: readonly number[], count: number): number[] {
  const n = candidates.length;
  if (count > n) throw new Error(`cannot pick ${count} of ${n} candidates`);
  return Array.from({ length: count }, (_, i) => candidates[Math.floor(((i + 0.5) * n) / count)]!);
}

/**
 * The raw pixels under each patch of a size × size image as G·G "tokens" of p² features
 * (G = size / p; token-major, row-major grid; features row-major within the patch).
 */
export function pixelPatchTokens(pixels: Float32Array, size: number, p: number): Float32Array {
  const g = size / p;
  const f = p * p;
  const out = new Float32Array(g * g * f);
  for (let ty = 0; ty < g; ty++)
    for (let tx = 0; tx < g; tx++) {
      const o = (ty * g + tx) * f;
      for (let y = 0; y < p; y++)
        for (let x = 0; x < p; x++) out[o + y * p + x] = pixels[(ty * p + y) * size + tx * p + x]!;
    }
  return out;
}

/**
 * Position "tokens" of a G × G grid: each token's features are a one-hot of its row (G values)
 * then a one-hot of its column (G values) — where it is, nothing of the image.
 */
export function positionTokens(g: number): Float32Array {
  const out = new Float32Array(g * g * 2 * g);
  for (let t = 0; t < g * g; t++) {
    out[t * 2 * g + Math.floor(t / g)] = 1;
    out[t * 2 * g + g + (t % g)] = 1;
  }
  return out;
}

/** A closed intensity interval. */
export interface Interval {
  readonly lo: number;
  readonly hi: number;
}

/**
 * Per foreground class 1..K−1, the [pLo, pHi] percentile interval of the intensities of its pixels
 * on the given slices (index 0, background, is an empty interval; a class without pixels too).
 */
export function fitIntervals(
  intensity: readonly ArrayLike<number>[],
  truth: readonly Uint8Array[],
  slices: readonly number[],
  classes: number,
  pLo = 5,
  pHi = 95,
): Interval[] {
  const out: Interval[] = [{ lo: NaN, hi: NaN }];
  for (let q = 1; q < classes; q++) {
    const v: number[] = [];
    for (const s of slices) {
      const t = truth[s]!;
      const h = intensity[s]!;
      for (let i = 0; i < t.length; i++) if (t[i] === q) v.push(h[i]!);
    }
    const values = Float64Array.from(v);
    out.push({ lo: percentile(values, pLo), hi: percentile(values, pHi) });
  }
  return out;
}

/**
 * The threshold rule: a pixel takes the class whose interval holds its intensity; where several
 * do, the narrowest interval wins (then the lower class index); none → background.
 */
export function thresholdClasses(intensity: ArrayLike<number>, intervals: readonly Interval[]): Uint8Array {
  const order = Array.from({ length: intervals.length - 1 }, (_, i) => i + 1)
    .filter((q) => intervals[q]!.hi >= intervals[q]!.lo)
    .sort((a, b) => intervals[a]!.hi - intervals[a]!.lo - (intervals[b]!.hi - intervals[b]!.lo) || a - b);
  const out = new Uint8Array(intensity.length);
  for (let i = 0; i < out.length; i++) {
    const x = intensity[i]!;
    for (const q of order) {
      const iv = intervals[q]!;
      if (x >= iv.lo && x <= iv.hi) {
        out[i] = q;
        break;
      }
    }
  }
  return out;
}

/**
 * Each foreground class cut to its largest 6-connected component over a volume of
 * `pred.length` slices of rows × cols (ties: the component met first in slice, row, column order).
 */
export function largestComponents(
  pred: readonly Uint8Array[],
  rows: number,
  cols: number,
  classes: number,
): Uint8Array[] {
  const slices = pred.length;
  const plane = rows * cols;
  const n = slices * plane;
  const flat = new Uint8Array(n);
  pred.forEach((p, s) => flat.set(p, s * plane));
  const comp = new Int32Array(n);
  const keep = new Uint8Array(n);
  const stack = new Int32Array(n);
  for (let q = 1; q < classes; q++) {
    comp.fill(-1);
    let bestSize = 0;
    let bestId = -1;
    let id = 0;
    for (let start = 0; start < n; start++) {
      if (flat[start] !== q || comp[start]! >= 0) continue;
      let top = 0;
      let size = 0;
      stack[top++] = start;
      comp[start] = id;
      while (top > 0) {
        const v = stack[--top]!;
        size++;
        const s = Math.floor(v / plane);
        const r = Math.floor((v % plane) / cols);
        const c = v % cols;
        const visit = (u: number): void => {
          if (flat[u] === q && comp[u]! < 0) {
            comp[u] = id;
            stack[top++] = u;
          }
        };
        if (c > 0) visit(v - 1);
        if (c < cols - 1) visit(v + 1);
        if (r > 0) visit(v - cols);
        if (r < rows - 1) visit(v + cols);
        if (s > 0) visit(v - plane);
        if (s < slices - 1) visit(v + plane);
      }
      if (size > bestSize) {
        bestSize = size;
        bestId = id;
      }
      id++;
    }
    for (let v = 0; v < n; v++) if (flat[v] === q && comp[v] === bestId) keep[v] = 1;
  }
  return pred.map((_, s) => {
    const o = s * plane;
    return Uint8Array.from({ length: plane }, (_, i) => (keep[o + i] ? flat[o + i]! : 0));
  });
}

/**
 * 3D Dice of one organ over a set of slices: the organ is the union of `members` (class indices) in
 * both the prediction and the truth; NaN when both are empty.
 */
export function diceOver(
  pred: readonly Uint8Array[],
  truth: readonly Uint8Array[],
  slices: readonly number[],
  members: readonly number[],
): number {
  const member = new Uint8Array(256);
  for (const c of members) member[c] = 1;
  let p = 0;
  let t = 0;
  let both = 0;
  for (const s of slices) {
    const a = pred[s]!;
    const b = truth[s]!;
    for (let i = 0; i < a.length; i++) {
      const x = member[a[i]!]!;
      const y = member[b[i]!]!;
      p += x;
      t += y;
      both += x & y;
    }
  }
  return p + t === 0 ? NaN : (2 * both) / (p + t);
}
