import { CuriaError } from '@curia/errors';
import { fromFloat32, writeSafetensors } from '@curia/tensors';

import type { Geometry } from '../geometry/geometry.js';
import { DEFAULT_VOLUME_LIMITS, formatBytes } from '../io/limits.js';
import { openVolume, type OpenVolumeOptions, type Volume, type VolumeSource } from '../volume.js';
import { clampBelow, copyInto, zscoreInto, type SliceStats } from './normalize.js';
import { resizeBicubicAa, ResizeScratch } from './resize.js';
import { resolveSelection, type SliceSelection } from './selection.js';
import { CURIA_DEFAULT_PREPROCESS_SPEC, validatePreprocessSpec, type PreprocessSpec } from './spec.js';

/** Statistics of a canonical slice before resizing (after scaling, before clamping). */
export interface RawSliceStats {
  readonly min: number;
  readonly max: number;
  readonly mean: number;
}

/** One preprocessed slice. */
export interface PreprocessedSlice {
  /** Index in canonical (inferior -> superior) order. */
  readonly canonicalIndex: number;
  /** Index of the same slice along the input's slice axis (`geometry.axes.slice.inputAxis`). */
  readonly inputSliceIndex: number;
  /** targetSize[0] x targetSize[1] float32, row-major (rows -> P, cols -> L). */
  readonly pixels: Float32Array;
  readonly rawStats: RawSliceStats;
  /** After resize and clipping; with the normalisation applied (`value = pixel * std + mean`). */
  readonly stats: SliceStats;
}

/** Options of {@link preprocessSlices}. */
export interface PreprocessOptions {
  /** Defaults to {@link CURIA_DEFAULT_PREPROCESS_SPEC}. */
  readonly spec?: PreprocessSpec;
  /** Defaults to all slices. */
  readonly selection?: SliceSelection;
  /** Stops the iteration (CANCELLED) before the next slice is computed. */
  readonly signal?: AbortSignal;
}

function cancelled(): CuriaError {
  return new CuriaError('CANCELLED', 'preprocessing was cancelled');
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Streams preprocessed canonical slices one at a time: read (scaled) -> resize (torch bicubic
 * antialias) -> optional clamp -> z-score. Memory beyond the opened volume is O(one slice); each
 * yielded `pixels` array is fresh and owned by the consumer.
 */
export async function* preprocessSlices(
  volume: Volume,
  opts: PreprocessOptions = {},
): AsyncGenerator<PreprocessedSlice, void, undefined> {
  const spec = opts.spec ?? CURIA_DEFAULT_PREPROCESS_SPEC;
  validatePreprocessSpec(spec);
  const indices = resolveSelection(opts.selection, volume.sliceCount);
  const [, rows, cols] = volume.geometry.canonicalDims;
  const [outH, outW] = spec.targetSize;
  const n = outH * outW;
  const raw = new Float64Array(rows * cols);
  const resized = new Float64Array(n);
  const scratch = new ResizeScratch();
  for (const k of indices) {
    if (opts.signal?.aborted) throw cancelled();
    await volume.readCanonicalSlice(k, raw);
    const rawStats = statsOf(raw, rows * cols);
    resizeBicubicAa(raw, rows, cols, outH, outW, resized, scratch);
    if (spec.clipBelowAir) clampBelow(resized, n, spec.clipMin);
    const pixels = new Float32Array(n);
    const stats =
      spec.normalize === 'zscore'
        ? zscoreInto(resized, n, pixels, spec.stdEpsilon)
        : copyInto(resized, n, pixels);
    yield {
      canonicalIndex: k,
      inputSliceIndex: volume.geometry.sliceInputIndex[k]!,
      pixels,
      rawStats,
      stats,
    };
    // Let abort events and other requests run between slices.
    await yieldToEventLoop();
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

/** Result of {@link preprocessToTensor}: a (k, 1, H, W) batch plus its provenance. */
export interface PreprocessedTensor {
  /** k * H * W float32 values, slice-major. */
  readonly pixelValues: Float32Array;
  /** [k, 1, H, W]. */
  readonly shape: readonly [number, number, number, number];
  /** Canonical slice index of each batch row. */
  readonly indices: readonly number[];
  /** Input slice index of each batch row. */
  readonly inputSliceIndices: readonly number[];
  readonly rawStats: readonly RawSliceStats[];
  readonly geometry: Geometry;
  readonly spec: PreprocessSpec;
}

/** Options of {@link preprocessToTensor}: open options plus preprocessing options. */
export type PreprocessToTensorOptions = OpenVolumeOptions & PreprocessOptions;

/** Opens `source` (or uses an opened volume) and preprocesses the selected slices into one tensor. */
export async function preprocessToTensor(
  source: VolumeSource | Volume,
  opts: PreprocessToTensorOptions = {},
): Promise<PreprocessedTensor> {
  const volume = 'kind' in source ? await openVolume(source, opts) : source;
  const spec = opts.spec ?? CURIA_DEFAULT_PREPROCESS_SPEC;
  validatePreprocessSpec(spec);
  const count = resolveSelection(opts.selection, volume.sliceCount).length;
  const [h, w] = spec.targetSize;
  const bytes = count * h * w * 4;
  const limit = opts.limits?.maxVoxelBytes ?? DEFAULT_VOLUME_LIMITS.maxVoxelBytes;
  if (bytes > limit) {
    throw new CuriaError(
      'RESOURCE_EXHAUSTED',
      `output tensor of ${count} slices x ${h}x${w} float32 needs ${formatBytes(bytes)}, above ${formatBytes(limit)} (limits.maxVoxelBytes); select fewer slices or stream with preprocessSlices`,
    );
  }
  const pixelValues = new Float32Array(count * h * w);
  const indices: number[] = [];
  const inputSliceIndices: number[] = [];
  const rawStats: RawSliceStats[] = [];
  for await (const s of preprocessSlices(volume, { spec, selection: opts.selection, signal: opts.signal })) {
    pixelValues.set(s.pixels, indices.length * h * w);
    indices.push(s.canonicalIndex);
    inputSliceIndices.push(s.inputSliceIndex);
    rawStats.push(s.rawStats);
  }
  return {
    pixelValues,
    shape: [count, 1, h, w],
    indices,
    inputSliceIndices,
    rawStats,
    geometry: volume.geometry,
    spec,
  };
}

/**
 * Writes a preprocessed batch as safetensors: `pixel_values` (k, 1, H, W) F32 with metadata
 * `slice_indices`, `input_slice_indices`, `geometry` and `preprocess_spec` (JSON strings).
 */
export async function writePreprocessed(path: string, result: PreprocessedTensor): Promise<void> {
  await writeSafetensors(path, [['pixel_values', fromFloat32(result.pixelValues, result.shape)]], {
    slice_indices: JSON.stringify(result.indices),
    input_slice_indices: JSON.stringify(result.inputSliceIndices),
    geometry: JSON.stringify(result.geometry),
    preprocess_spec: JSON.stringify(result.spec),
  });
}
