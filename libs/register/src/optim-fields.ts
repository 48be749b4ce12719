import { CuriaError } from '@curia/errors';

import { voxelCount, type Grid, type GridField } from './field.js';
import { invert } from './grid.js';
import { m3Of } from './optim-math.js';
import type { FloatArray } from './optim-smooth.js';

/*
 * Voxel-space helpers of the optimisers, which work in level voxels (pooling and world resampling
 * are `resample.ts`'s poolField and resampleToGrid): trilinear sampling with edge clamping,
 * displacement resampling between pooled levels, voxel ↔ millimetre displacements, input checks.
 */

/** Dimensions of a grid as a tuple. */
export type Dims3 = readonly [number, number, number];

/** Dims of a grid pooled by `factor`, as `poolField` makes them (partial far-edge blocks kept). */
export function pooledDims(dims: Dims3, factor: number): [number, number, number] {
  return [Math.ceil(dims[0] / factor), Math.ceil(dims[1] / factor), Math.ceil(dims[2] / factor)];
}

/** The cell of a clamped trilinear sample: first corner, neighbour strides (0 on axes of 1 voxel), fractions. */
export interface TrilinearCell {
  b: number;
  sx: number;
  sy: number;
  sz: number;
  fx: number;
  fy: number;
  fz: number;
}

/** A {@link TrilinearCell} to fill. */
export function newTrilinearCell(): TrilinearCell {
  return { b: 0, sx: 0, sy: 0, sz: 0, fx: 0, fy: 0, fz: 0 };
}

/**
 * The cell of voxel position (x, y, z) clamped to the grid (edge values continue outside), written
 * to `cell`.
 */
export function trilinearCell(dims: Dims3, x: number, y: number, z: number, cell: TrilinearCell): void {
  const [nx, ny, nz] = dims;
  const px = x <= 0 ? 0 : x >= nx - 1 ? nx - 1 : x;
  const py = y <= 0 ? 0 : y >= ny - 1 ? ny - 1 : y;
  const pz = z <= 0 ? 0 : z >= nz - 1 ? nz - 1 : z;
  let i0 = Math.floor(px);
  let j0 = Math.floor(py);
  let k0 = Math.floor(pz);
  if (i0 > nx - 2) i0 = Math.max(nx - 2, 0);
  if (j0 > ny - 2) j0 = Math.max(ny - 2, 0);
  if (k0 > nz - 2) k0 = Math.max(nz - 2, 0);
  cell.fx = px - i0;
  cell.fy = py - j0;
  cell.fz = pz - k0;
  cell.sx = nx > 1 ? 1 : 0;
  cell.sy = ny > 1 ? nx : 0;
  cell.sz = nz > 1 ? nx * ny : 0;
  cell.b = i0 + nx * (j0 + ny * k0);
}

/** The trilinear interpolation of the channel at `offset` over `cell`. */
export function lerpCell(data: FloatArray, offset: number, cell: TrilinearCell): number {
  const { sx, sy, sz, fx, fy, fz } = cell;
  const b = offset + cell.b;
  const c00 = data[b]! * (1 - fx) + data[b + sx]! * fx;
  const c10 = data[b + sy]! * (1 - fx) + data[b + sy + sx]! * fx;
  const c01 = data[b + sz]! * (1 - fx) + data[b + sz + sx]! * fx;
  const c11 = data[b + sz + sy]! * (1 - fx) + data[b + sz + sy + sx]! * fx;
  return (c00 * (1 - fy) + c10 * fy) * (1 - fz) + (c01 * (1 - fy) + c11 * fy) * fz;
}

const scratchCell = newTrilinearCell();

/**
 * Trilinear sample of channel data at voxel position (x, y, z), clamped to the grid (edge values
 * continue outside).
 */
export function trilinear(
  data: FloatArray,
  offset: number,
  dims: Dims3,
  x: number,
  y: number,
  z: number,
): number {
  trilinearCell(dims, x, y, z, scratchCell);
  return lerpCell(data, offset, scratchCell);
}

/**
 * Resamples a displacement field given in voxels of a level with stride `from` (relative to a fine
 * grid of `fineDims`) onto the level with stride `to`, trilinearly, converting the units.
 */
export function resampleDisplacement(
  disp: FloatArray,
  fineDims: Dims3,
  from: number,
  to: number,
): Float64Array {
  const src = pooledDims(fineDims, from);
  const dst = pooledDims(fineDims, to);
  const ns = src[0] * src[1] * src[2];
  const nd = dst[0] * dst[1] * dst[2];
  const out = new Float64Array(3 * nd);
  const scale = from / to;
  // Level-`to` voxel a sits at fine coordinate to·a + (to − 1)/2, i.e. level-`from` coordinate
  // (to·a + (to − 1)/2 − (from − 1)/2) / from.
  const off = ((to - 1) / 2 - (from - 1) / 2) / from;
  const r = to / from;
  for (let k = 0, v = 0; k < dst[2]; k++) {
    for (let j = 0; j < dst[1]; j++) {
      for (let i = 0; i < dst[0]; i++, v++) {
        const x = r * i + off;
        const y = r * j + off;
        const z = r * k + off;
        for (let c = 0; c < 3; c++) out[c * nd + v] = scale * trilinear(disp, c * ns, src, x, y, z);
      }
    }
  }
  return out;
}

/** Converts a voxel-unit displacement (3 channels) on `grid` to LPS millimetres, as a GridField. */
export function voxelToWorldDisplacement(disp: FloatArray, grid: Grid): GridField {
  const n = voxelCount(grid);
  const a = m3Of(grid.affine);
  const out = new Float32Array(3 * n);
  for (let v = 0; v < n; v++) {
    const dx = disp[v]!;
    const dy = disp[n + v]!;
    const dz = disp[2 * n + v]!;
    out[v] = a[0]! * dx + a[1]! * dy + a[2]! * dz;
    out[n + v] = a[3]! * dx + a[4]! * dy + a[5]! * dz;
    out[2 * n + v] = a[6]! * dx + a[7]! * dy + a[8]! * dz;
  }
  return { grid, channels: 3, data: out };
}

/** Converts a millimetre displacement field (3 channels, LPS) to voxel units of its grid. */
export function worldToVoxelDisplacement(v: GridField): Float64Array {
  const n = voxelCount(v.grid);
  const inv = m3Of(invert(v.grid.affine));
  const out = new Float64Array(3 * n);
  for (let i = 0; i < n; i++) {
    const x = v.data[i]!;
    const y = v.data[n + i]!;
    const z = v.data[2 * n + i]!;
    out[i] = inv[0]! * x + inv[1]! * y + inv[2]! * z;
    out[n + i] = inv[3]! * x + inv[4]! * y + inv[5]! * z;
    out[2 * n + i] = inv[6]! * x + inv[7]! * y + inv[8]! * z;
  }
  return out;
}

/** INVALID_ARGUMENT unless `f` is a well-formed field (dims, channels, data length, finite affine). */
export function checkField(f: GridField, what: string): void {
  const d = f.grid.dims;
  if (d.length !== 3 || d.some((x) => !Number.isInteger(x) || x < 1)) {
    throw new CuriaError('INVALID_ARGUMENT', `${what}: grid dims must be three positive integers`);
  }
  if (!Number.isInteger(f.channels) || f.channels < 1) {
    throw new CuriaError('INVALID_ARGUMENT', `${what}: channels must be a positive integer`);
  }
  if (f.data.length !== f.channels * voxelCount(f.grid)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${what}: data holds ${f.data.length} values; ${f.channels} channels of ${d.join('×')} need ${f.channels * voxelCount(f.grid)}`,
    );
  }
  if (f.grid.affine.length !== 16 || f.grid.affine.some((x) => !Number.isFinite(x))) {
    throw new CuriaError('INVALID_ARGUMENT', `${what}: grid affine must be 16 finite numbers`);
  }
}

/** True when two grids have the same dims and (to 1e-4 mm) the same affine. */
export function sameGrid(a: Grid, b: Grid): boolean {
  return (
    a.dims[0] === b.dims[0] &&
    a.dims[1] === b.dims[1] &&
    a.dims[2] === b.dims[2] &&
    a.affine.every((x, i) => Math.abs(x - b.affine[i]!) <= 1e-4 * Math.max(1, Math.abs(x)))
  );
}

/**
 * Which voxels of the level with stride `stride` over a grid of `fineDims` hold usable data: 0 for
 * those covering a fine voxel within `margin` voxels of a face of the grid (features there see the
 * edge of the field of view), 1 elsewhere. Null when `margin` is 0.
 */
export function interiorMask(fineDims: Dims3, stride: number, margin: number): Uint8Array | null {
  if (margin <= 0) return null;
  const d = pooledDims(fineDims, stride);
  const inside = (axis: number, i: number): boolean =>
    stride * i >= margin && Math.min(stride * (i + 1), fineDims[axis]!) - 1 <= fineDims[axis]! - 1 - margin;
  const out = new Uint8Array(d[0] * d[1] * d[2]);
  for (let k = 0, v = 0; k < d[2]; k++) {
    for (let j = 0; j < d[1]; j++) {
      for (let i = 0; i < d[0]; i++, v++) out[v] = inside(0, i) && inside(1, j) && inside(2, k) ? 1 : 0;
    }
  }
  return out;
}
