/** Clamps values below `min` in place. */
export function clampBelow(values: Float64Array, n: number, min: number): void {
  for (let i = 0; i < n; i++) if (values[i]! < min) values[i] = min;
}

/**
 * Statistics of a slice after resizing and clipping, and the normalisation applied to it:
 * `pixel = (value - mean) / std`, so `value = pixel * std + mean`.
 */
export interface SliceStats {
  readonly min: number;
  readonly max: number;
  /** Mean subtracted by the z-score (0 without normalisation). */
  readonly mean: number;
  /** Divisor of the z-score: the unbiased std, or 1 below the epsilon / without normalisation. */
  readonly std: number;
}

function rangeOf(values: Float64Array, n: number): { min: number; max: number; sum: number } {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const x = values[i]!;
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
  }
  return { min, max, sum };
}

/**
 * Writes the per-slice z-score of `values[0..n)` into `out` as float32: (x - mean) / std with the
 * unbiased std (N - 1, as torch's default); std below `eps` (or a single value) divides by 1.
 * Returns the statistics it used.
 */
export function zscoreInto(values: Float64Array, n: number, out: Float32Array, eps: number): SliceStats {
  const { min, max, sum } = rangeOf(values, n);
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = values[i]! - mean;
    ss += d * d;
  }
  const raw = n > 1 ? Math.sqrt(ss / (n - 1)) : 0;
  const std = raw < eps || !(raw > 0) ? 1 : raw;
  const inv = 1 / std;
  for (let i = 0; i < n; i++) out[i] = (values[i]! - mean) * inv;
  return { min, max, mean, std };
}

/** Copies `values[0..n)` into a float32 output unchanged; returns its range (mean 0, std 1). */
export function copyInto(values: Float64Array, n: number, out: Float32Array): SliceStats {
  for (let i = 0; i < n; i++) out[i] = values[i]!;
  const { min, max } = rangeOf(values, n);
  return { min, max, mean: 0, std: 1 };
}
