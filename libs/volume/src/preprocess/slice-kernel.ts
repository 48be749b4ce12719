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
  /** targetSize[0] x targetSize[1] float32, row-major: the `out` array given, else a fresh one. */
  readonly pixels: Float32Array;
  readonly rawStats: RawSliceStats;
  readonly stats: SliceStats;
}

/** Scratch buffers reused across {@link processSlice} calls of one thread. */
export class SliceScratch {
  private resized = new Float64Array(0);
  private pixels = new Float32Array(0);
  private gathered = new Float64Array(0);
  readonly resize = new ResizeScratch();

  /** A float64 buffer of exactly `n` values (reused; for a slice gathered from an input plane). */
  input(n: number): Float64Array {
    if (this.gathered.length !== n) this.gathered = new Float64Array(n);
    return this.gathered;
  }

  /** A float64 buffer of at least `n` values (reused). */
  output(n: number): Float64Array {
    if (this.resized.length < n) this.resized = new Float64Array(n);
    return this.resized;
  }

  /** A float32 buffer of exactly `n` values (reused; for outputs converted afterwards). */
  float32(n: number): Float32Array {
    if (this.pixels.length !== n) this.pixels = new Float32Array(n);
    return this.pixels;
  }

  /**
   * Drops every buffer above `maxBytes`, so that one huge slice (an 8192² frame gathers into
   * 512 MiB) does not stay resident in a pool thread after its call, outside the memory budget
   * that admitted it. Buffers of ordinary slices stay for reuse. Returns the bytes dropped.
   */
  trim(maxBytes: number): number {
    const before = this.bytes;
    if (this.gathered.byteLength > maxBytes) this.gathered = new Float64Array(0);
    if (this.resized.byteLength > maxBytes) this.resized = new Float64Array(0);
    if (this.pixels.byteLength > maxBytes) this.pixels = new Float32Array(0);
    if (this.resize.tmp.byteLength > maxBytes) this.resize.tmp = new Float64Array(0);
    return before - this.bytes;
  }

  /** Bytes held by the buffers. */
  get bytes(): number {
    return (
      this.gathered.byteLength + this.resized.byteLength + this.pixels.byteLength + this.resize.tmp.byteLength
    );
  }
}

/** Scratch a slice thread keeps between tasks: a 2048² float64 gather (32 MiB), not more. */
export const KEEP_SCRATCH_BYTES = 32 * 1024 * 1024;

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
 * plain copy), written into `out` (targetSize[0] x targetSize[1] values) or a fresh array. Pure:
 * the same inputs give the same bits on any thread.
 */
export function processSlice(
  raw: Float64Array,
  rows: number,
  cols: number,
  spec: PreprocessSpec,
  scratch: SliceScratch,
  out?: Float32Array,
): ProcessedSlice {
  const [outH, outW] = spec.targetSize;
  const n = outH * outW;
  if (out && out.length !== n) throw new RangeError(`output holds ${out.length} values, not ${n}`);
  const rawStats = statsOf(raw, rows * cols);
  const resized = resizeBicubicAa(raw, rows, cols, outH, outW, scratch.output(n), scratch.resize);
  if (spec.clipBelowAir) clampBelow(resized, n, spec.clipMin);
  const pixels = out ?? new Float32Array(n);
  const stats =
    spec.normalize === 'zscore'
      ? zscoreInto(resized, n, pixels, spec.stdEpsilon)
      : copyInto(resized, n, pixels);
  return { pixels, rawStats, stats };
}
