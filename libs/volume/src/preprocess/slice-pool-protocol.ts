import type { ErrorCode } from '@curia/errors';

import type { EncodedFrame } from '../dicom/pixel-data.js';
import type { SliceWalk } from '../io/slice-gather.js';
import type { VoxelArray } from '../io/voxel-array.js';
import type { RawSliceStats } from './slice-kernel.js';
import type { SliceStats } from './normalize.js';
import type { PreprocessSpec } from './spec.js';

/** Element type of the pixel values a pool thread writes (little-endian). */
export type SliceDType = 'F32' | 'F16';

/** Bytes per value of each {@link SliceDType}. */
export const SLICE_DTYPE_BYTES: Readonly<Record<SliceDType, number>> = { F32: 4, F16: 2 };

/** Where a pool thread writes a slice: `dtype` values from `byteOffset` of `buffer` on. */
export interface SliceOutput {
  readonly buffer: ArrayBuffer;
  readonly byteOffset: number;
  readonly dtype: SliceDType;
}

/** How a pool thread gathers and scales a canonical slice out of an input plane. */
interface PlaneLayout {
  readonly walk: SliceWalk;
  readonly slope: number;
  readonly inter: number;
}

/**
 * The input of one slice: `raw`, the canonical slice already read and scaled (rows x cols
 * float64); `plane`, a stored input plane the thread gathers and scales itself; or `encoded`, a
 * compressed DICOM frame the thread also decodes (see `Volume.readCanonicalPlane`). The last two
 * take that work off the caller's thread.
 */
export type SliceInput =
  | { readonly kind: 'raw'; readonly raw: Float64Array }
  | ({ readonly kind: 'plane'; readonly voxels: VoxelArray } & PlaneLayout)
  | ({ readonly kind: 'encoded'; readonly encoded: EncodedFrame } & PlaneLayout);

/** The array of an input, whose buffer is transferred to the thread and back. */
export function inputArray(input: SliceInput): Float64Array | VoxelArray {
  return input.kind === 'raw' ? input.raw : input.kind === 'plane' ? input.voxels : input.encoded.frame;
}

/** One slice to process on a pool thread; the input's array and `out.buffer` are transferred and come back. */
export interface SliceTask {
  readonly id: number;
  readonly input: SliceInput;
  readonly rows: number;
  readonly cols: number;
  readonly spec: PreprocessSpec;
  readonly out: SliceOutput;
}

/** A pool thread's answer: the statistics plus both buffers, the output filled in. */
export type SliceAnswer =
  | {
      readonly id: number;
      readonly ok: true;
      readonly input: SliceInput;
      readonly out: SliceOutput;
      readonly rawStats: RawSliceStats;
      readonly stats: SliceStats;
    }
  | {
      readonly id: number;
      readonly ok: false;
      readonly message: string;
      /** Status of a CuriaError (a corrupt frame is INVALID_ARGUMENT); absent for a bug. */
      readonly code?: ErrorCode;
    };
