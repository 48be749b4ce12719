import { clampBelow, copyInto, zscoreInto, type SliceStats } from './normalize.js';
import { resizeBicubicAa, ResizeScratch } from './resize.js';
import type { PreprocessSpec } from './spec.js';

/** Statistics of a canonical slice before resizing (after scaling, before clamping). */
export interface RawSliceStats {
  readonly min: number;
  readonly max: number;
  readonly mean: number;
}

/** What {@link processSlice} computes for one canonical slice. */
export interface ProcessedSlice {
  /** targetSize[0] x targetSize[1] float32, row-major; a fresh array. */
  readonly pixels: Float32Array;
  readonly rawStats: RawSliceStats;
  readonly stats: SliceStats;
}

/** Scratch buffers reused across {@link processSlice} calls of one thread. */
export class SliceScratch {
  private resized = new Float64Array(0);
  readonly resize = new ResizeScratch();

  /** A float64 buffer of at least `n` values (reused). */
  output(n: number): Float64Array {
    if (this.resized.length < n) this.resized = new Float64Array(n);
    return this.resized;
  }
}

function statsOf(v: Float64Array, n: number): RawSliceStats {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const x = v[i]!;
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
  }
  return { min, max, mean: sum / n };
}

/**
 * The per-slice computation of the Curia preprocessing, on a `rows x cols` canonical slice
 * already read and scaled: resize (torch bicubic antialias) -> optional clamp -> z-score (or a
 * plain copy). Pure: the same inputs give the same bits on any thread.
 */
export function processSlice(
  raw: Float64Array,
  rows: number,
  cols: number,
  spec: PreprocessSpec,
  scratch: SliceScratch,
): ProcessedSlice {
  const [outH, outW] = spec.targetSize;
  const n = outH * outW;
  const rawStats = statsOf(raw, rows * cols);
  const resized = resizeBicubicAa(raw, rows, cols, outH, outW, scratch.output(n), scratch.resize);
  if (spec.clipBelowAir) clampBelow(resized, n, spec.clipMin);
  const pixels = new Float32Array(n);
  const stats =
    spec.normalize === 'zscore'
      ? zscoreInto(resized, n, pixels, spec.stdEpsilon)
      : copyInto(resized, n, pixels);
  return { pixels, rawStats, stats };
}
