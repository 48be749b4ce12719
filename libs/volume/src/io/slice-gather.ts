import type { AxisMapping, Geometry } from '../geometry/geometry.js';
import type { VoxelArray } from './voxel-array.js';

/** Linear element offsets for walking one canonical slice through a strided input array. */
export interface SliceWalk {
  /** Offset of canonical (row 0, col 0). */
  readonly base: number;
  readonly rowStep: number;
  readonly colStep: number;
}

/**
 * Offsets of canonical slice `k` in an input array with element strides `strides` (per input
 * axis i, j, k). A stride of 0 drops that axis (used for single-plane arrays).
 */
export function sliceWalk(g: Geometry, k: number, strides: readonly [number, number, number]): SliceWalk {
  const start = (m: AxisMapping): number =>
    (m.flip ? g.inputDims[m.inputAxis] - 1 : 0) * strides[m.inputAxis];
  const step = (m: AxisMapping): number => (m.flip ? -1 : 1) * strides[m.inputAxis];
  const { slice, row, col } = g.axes;
  return {
    base: g.sliceInputIndex[k]! * strides[slice.inputAxis] + start(row) + start(col),
    rowStep: step(row),
    colStep: step(col),
  };
}

/**
 * Copies a rows x cols canonical slice out of `src` into `out` as float64, applying
 * `value * slope + inter`.
 */
export function gatherSlice(
  src: VoxelArray,
  walk: SliceWalk,
  rows: number,
  cols: number,
  slope: number,
  inter: number,
  out: Float64Array,
): void {
  const { base, rowStep, colStep } = walk;
  let o = 0;
  if (colStep === 1) {
    for (let r = 0; r < rows; r++) {
      const p = base + r * rowStep;
      for (let c = 0; c < cols; c++) out[o++] = src[p + c]! * slope + inter;
    }
    return;
  }
  for (let r = 0; r < rows; r++) {
    let p = base + r * rowStep;
    for (let c = 0; c < cols; c++, p += colStep) out[o++] = src[p]! * slope + inter;
  }
}
