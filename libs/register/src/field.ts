/**
 * The shared vocabulary of the registration engine.
 *
 * Conventions (every module follows them):
 * - World coordinates are patient millimetres in the **LPS** frame (DICOM's; NIfTI's RAS is converted
 *   on the way in and out).
 * - A 4×4 matrix is row-major (`m[4 * row + col]`) and maps column vectors `(x, y, z, 1)`.
 * - Voxel data is stored in NIfTI order: index `i + X·(j + Y·k)`; multi-channel data is channel-major,
 *   channel `c` at `[c·N, (c + 1)·N)` with `N = X·Y·Z`.
 * - A registration maps FIXED positions to MOVING positions (pull-back): the moving image is sampled at
 *   `x_moving = T(x_fixed)`; a displacement field `u` on a grid means `T(x) = x + u(x)`, `u` in mm (LPS).
 */

/** A row-major 4×4 matrix. */
export type Mat4 = readonly number[];

/** A regular grid in world space: voxel (i, j, k) sits at `affine · (i, j, k, 1)` (LPS mm). */
export interface Grid {
  readonly dims: readonly [number, number, number];
  readonly affine: Mat4;
}

/** Values on a grid: `channels` scalar volumes, channel-major, each in NIfTI order. */
export interface GridField {
  readonly grid: Grid;
  readonly channels: number;
  readonly data: Float32Array;
}

/**
 * A label map on a grid (NIfTI order), U8 or U16 as stored; resampled with nearest-neighbour
 * interpolation, so the element type is kept.
 */
export interface LabelField {
  readonly grid: Grid;
  readonly data: Uint8Array | Uint16Array;
}

/** Voxels of a grid. */
export function voxelCount(g: Grid): number {
  return g.dims[0] * g.dims[1] * g.dims[2];
}
