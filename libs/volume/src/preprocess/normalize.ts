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

/** Samples used to pick the shift of {@link zscoreInto}'s one-pass sums. */
const SHIFT_SAMPLES = 1024;

/**
 * Writes the per-slice z-score of `values[0..n)` into `out` as float32: (x - mean) / std with the
 * unbiased std (N - 1, as torch's default); std below `eps` (or a single value) divides by 1.
 * Returns the statistics it used.
 *
 * Two passes instead of three: range, sum and sum of squares are gathered in one pass over values
 * shifted by the mean of a strided subsample (the shifted-data variance algorithm). With the shift
 * near the mean there is no catastrophic cancellation (a constant slice gives exactly 0), so the
 * result agrees with the two-pass formula to ~1e-12 relative.
 */
export function zscoreInto(values: Float64Array, n: number, out: Float32Array, eps: number): SliceStats {
  const stride = Math.max(1, Math.floor(n / SHIFT_SAMPLES));
  let ks = 0;
  let kc = 0;
  for (let i = 0; i < n; i += stride, kc++) ks += values[i]!;
  const shift = kc > 0 ? ks / kc : 0;
  let min = Infinity;
  let max = -Infinity;
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const x = values[i]!;
    if (x < min) min = x;
    if (x > max) max = x;
    const d = x - shift;
    s1 += d;
    s2 += d * d;
  }
  const mean = shift + s1 / n;
  const ss = Math.max(0, s2 - (s1 * s1) / n);
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
