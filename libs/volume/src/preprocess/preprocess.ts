import { CuriaError } from '@curia/errors';
import { fromFloat32, writeSafetensors } from '@curia/tensors';

import type { Geometry } from '../geometry/geometry.js';
import { DEFAULT_VOLUME_LIMITS, formatBytes } from '../io/limits.js';
import { openVolume, type OpenVolumeOptions, type Volume, type VolumeSource } from '../volume.js';
import type { SliceStats } from './normalize.js';
import { resolveSelection, type SliceSelection } from './selection.js';
import { processSlice, SliceScratch, type RawSliceStats } from './slice-kernel.js';
import type { VoxelArray } from '../io/voxel-array.js';
import { SLICE_DTYPE_BYTES, type SliceDType, type SliceInput } from './slice-pool-protocol.js';
import type { PooledSlice, SlicePool } from './slice-pool.js';
import { CURIA_DEFAULT_PREPROCESS_SPEC, validatePreprocessSpec, type PreprocessSpec } from './spec.js';

export type { RawSliceStats } from './slice-kernel.js';

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
  const raw = new Float64Array(rows * cols);
  const scratch = new SliceScratch();
  for (const k of indices) {
    if (opts.signal?.aborted) throw cancelled();
    await volume.readCanonicalSlice(k, raw);
    const { pixels, rawStats, stats } = processSlice(raw, rows, cols, spec, scratch);
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

/**
 * How {@link preprocessSlicesOnPool} lays each slice's values out: the element type, and spare
 * bytes around the values in their buffer (for a consumer that frames them in place, such as a
 * message encoder, instead of copying them).
 */
export interface SliceLayout {
  /** Element type of the values (default F32); F16 is converted on the pool thread. */
  readonly dtype?: SliceDType;
  /** Spare bytes before the values (default 0; rounded up to a multiple of 8 for alignment). */
  readonly headroom?: number;
  /** Spare bytes after the values (default 0). */
  readonly tailroom?: number;
}

/** Options of {@link preprocessSlicesOnPool}. */
export interface PooledPreprocessOptions extends PreprocessOptions {
  /** Slices being computed ahead of the consumer (default 2 per pool thread, at least 2). */
  readonly prefetch?: number;
  readonly layout?: SliceLayout;
}

/** One slice from {@link preprocessSlicesOnPool}: the values as bytes in a recyclable buffer. */
export interface PooledPreprocessedSlice extends Omit<PreprocessedSlice, 'pixels'> {
  readonly dtype: SliceDType;
  /**
   * targetSize[0] x targetSize[1] little-endian `dtype` values, row-major: a view of a buffer of
   * its own with the layout's headroom before it and tailroom after it.
   */
  readonly data: Uint8Array;
  /**
   * Hands the buffer back for the call's next slices (idempotent); `data` must not be used
   * afterwards. Not calling it is safe: the buffer is then left to the garbage collector.
   */
  readonly release: () => void;
}

/**
 * {@link preprocessSlices} on a {@link SlicePool}: the calling thread only copies out each slice's
 * input plane (or reads the raw slice where canonical slices cut across planes), while up to
 * `prefetch` slices are decoded, gathered, resized and normalised ahead of the consumer on the
 * pool threads, so the consumer's own work (encoding, network writes) overlaps the computation.
 * Same slices, same order, same values (bit for bit, F32) as {@link preprocessSlices}; memory
 * stays O(prefetch slices). Output buffers the consumer releases are reused, so a long volume
 * allocates (and leaves for the collector) a handful of them rather than one per slice. Closing
 * the generator early drops the slices still in flight.
 */
export async function* preprocessSlicesOnPool(
  volume: Volume,
  pool: SlicePool,
  opts: PooledPreprocessOptions = {},
): AsyncGenerator<PooledPreprocessedSlice, void, undefined> {
  const spec = opts.spec ?? CURIA_DEFAULT_PREPROCESS_SPEC;
  validatePreprocessSpec(spec);
  const indices = resolveSelection(opts.selection, volume.sliceCount);
  const [, rows, cols] = volume.geometry.canonicalDims;
  const prefetch = Math.max(1, Math.floor(opts.prefetch ?? Math.max(2, 2 * pool.size)));
  const dtype = opts.layout?.dtype ?? 'F32';
  const headroom = Math.ceil(Math.max(0, opts.layout?.headroom ?? 0) / 8) * 8;
  const valueBytes = spec.targetSize[0] * spec.targetSize[1] * SLICE_DTYPE_BYTES[dtype];
  const bufferBytes = headroom + valueBytes + Math.max(0, opts.layout?.tailroom ?? 0);
  const freeRaw: Float64Array[] = [];
  const freePlanes: VoxelArray[] = [];
  // Released output buffers; bounded, since a consumer may release long after the next slices.
  const freeOut: ArrayBuffer[] = [];
  const maxFreeOut = prefetch + 4;
  let finished = false;
  const inflight: { k: number; result: Promise<PooledSlice> }[] = [];
  let next = 0;
  // The pool thread gathers and scales the slice from its input plane (decoding it first when it
  // is a compressed DICOM frame) when the volume offers one.
  const readInput = async (k: number): Promise<SliceInput> => {
    const plane = await volume.readCanonicalPlane?.(k, freePlanes.pop());
    if (plane) return 'encoded' in plane ? { kind: 'encoded', ...plane } : { kind: 'plane', ...plane };
    return {
      kind: 'raw',
      raw: await volume.readCanonicalSlice(k, freeRaw.pop() ?? new Float64Array(rows * cols)),
    };
  };
  try {
    while (next < indices.length || inflight.length > 0) {
      while (inflight.length < prefetch && next < indices.length) {
        if (opts.signal?.aborted) throw cancelled();
        const k = indices[next++]!;
        const input = await readInput(k);
        const buffer = freeOut.pop() ?? new ArrayBuffer(bufferBytes);
        const result = pool.process(input, rows, cols, spec, { buffer, byteOffset: headroom, dtype });
        result.catch(() => undefined); // observed in order below
        inflight.push({ k, result });
      }
      const head = inflight.shift()!;
      const { input, out, rawStats, stats } = await head.result;
      if (input.kind === 'raw') freeRaw.push(input.raw);
      else if (input.kind === 'plane') freePlanes.push(input.voxels);
      if (opts.signal?.aborted) throw cancelled();
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        if (!finished && freeOut.length < maxFreeOut) freeOut.push(out.buffer);
      };
      yield {
        canonicalIndex: head.k,
        inputSliceIndex: volume.geometry.sliceInputIndex[head.k]!,
        dtype,
        data: new Uint8Array(out.buffer, headroom, valueBytes),
        release,
        rawStats,
        stats,
      };
    }
  } finally {
    finished = true;
  }
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
