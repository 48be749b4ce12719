/** Clamps values below `min` in place. */
export function clampBelow(values: Float64Array, n: number, min: number): void {
  for (let i = 0; i < n; i++) if (values[i]! < min) values[i] = min;
}

/**
 * Writes the per-slice z-score of `values[0..n)` into `out` as float32: (x - mean) / std with the
 * unbiased std (N - 1, as torch's default); std below `eps` (or a single value) divides by 1.
 */
export function zscoreInto(values: Float64Array, n: number, out: Float32Array, eps: number): void {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i]!;
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = values[i]! - mean;
    ss += d * d;
  }
  const std = n > 1 ? Math.sqrt(ss / (n - 1)) : 0;
  const inv = std < eps || !(std > 0) ? 1 : 1 / std;
  for (let i = 0; i < n; i++) out[i] = (values[i]! - mean) * inv;
}

/** Copies `values[0..n)` into a float32 output unchanged. */
export function copyInto(values: Float64Array, n: number, out: Float32Array): void {
  for (let i = 0; i < n; i++) out[i] = values[i]!;
}
