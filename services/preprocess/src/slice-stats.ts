/** Statistics of a slice after resize and optional clipping, before z-scoring (SliceStats in the proto). */
export interface SliceStats {
  readonly min: number;
  readonly max: number;
  /** Mean used by the z-score. */
  readonly mean: number;
  /** Unbiased std used by the z-score (1 when below `eps`, i.e. constant slices). */
  readonly std: number;
}

/**
 * Z-scores `values` in place exactly as the engine's `zscoreInto` does ((x - mean) / unbiased std,
 * std < eps → 1, sums in float64) and returns the statistics, so clients can undo the
 * normalisation. The engine's RawSliceStats are taken before resizing and lack the std, hence this
 * helper (it belongs in @curia/volume's normalize module).
 */
export function zscoreWithStats(values: Float32Array, eps: number): SliceStats {
  const n = values.length;
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const x = values[i]!;
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
  }
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = values[i]! - mean;
    ss += d * d;
  }
  const raw = n > 1 ? Math.sqrt(ss / (n - 1)) : 0;
  const std = raw < eps || !(raw > 0) ? 1 : raw;
  const inv = 1 / std;
  for (let i = 0; i < n; i++) values[i] = (values[i]! - mean) * inv;
  return { min, max, mean, std };
}

/** Statistics of an un-normalised slice (mean 0 / std 1 so that original = pixel * std + mean holds). */
export function rangeStats(values: Float32Array): SliceStats {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return { min, max, mean: 0, std: 1 };
}
