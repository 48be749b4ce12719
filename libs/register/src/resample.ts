import { CuriaError } from '@curia/errors';
import { sliceWalk, type Volume } from '@curia/volume';

import { voxelCount, type Grid, type GridField, type LabelField, type Mat4 } from './field.js';
import { applyPoint, compose, IDENTITY, inputGrid, invert, type Vec3 } from './grid.js';
import { affineRow, nearestRow, trilinearRow } from './interpolate.js';

/**
 * Resampling of fields and label maps between grids.
 *
 * Interpolation: a continuous voxel position c of a grid of n voxels along an axis is **inside** when
 * −0.5 ≤ c ≤ n − 0.5 on every axis (the voxels' footprint, as ITK's `IsInsideBuffer`); positions in
 * the outer half voxel take the border value. Outside, the output is `fill` and the optional
 * `valid` mask (one byte per target voxel) is 0. Trilinear for fields, nearest (rounding half up)
 * for label maps. Coordinates are computed one target row at a time from precomposed affines, so the
 * inner loops hold no closures and allocate nothing.
 */

/** A world → world map (LPS mm), FIXED → MOVING: the slow, general form of a transform. */
export type PointTransform = (p: Vec3) => readonly number[];

/** Scratch for one target row: continuous source coordinates and, with a field, its vectors. */
class RowScratch {
  readonly x: Float64Array;
  readonly y: Float64Array;
  readonly z: Float64Array;
  readonly d: Float32Array;
  constructor(n: number) {
    this.x = new Float64Array(n);
    this.y = new Float64Array(n);
    this.z = new Float64Array(n);
    this.d = new Float32Array(3 * n);
  }
}

function sameGrid(a: Grid, b: Grid): boolean {
  if (a.dims[0] !== b.dims[0] || a.dims[1] !== b.dims[1] || a.dims[2] !== b.dims[2]) return false;
  for (let i = 0; i < 12; i++) if (Math.abs(a.affine[i]! - b.affine[i]!) > 1e-6) return false;
  return true;
}

function checkField(f: GridField, what: string, channels?: number): void {
  const n = voxelCount(f.grid);
  if (channels !== undefined && f.channels !== channels) {
    throw new CuriaError('INVALID_ARGUMENT', `${what} must have ${channels} channels, has ${f.channels}`);
  }
  if (f.data.length !== n * f.channels) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${what} holds ${f.data.length} values; its grid ${f.grid.dims.join('x')} × ${f.channels} channels needs ${n * f.channels}`,
    );
  }
}

/** Clamped interpolation position along an axis of n nodes: lower node, step to the upper one, weight. */
function axisTap(c: number, n: number, stride: number): [number, number, number] {
  const v = c < 0 ? 0 : c > n - 1 ? n - 1 : c;
  let i0 = Math.floor(v);
  if (i0 > n - 2) i0 = n > 1 ? n - 2 : 0;
  return [i0 * stride, n > 1 ? stride : 0, v - i0];
}

/**
 * A 3-channel field (a displacement) interpolated trilinearly at the voxels of target rows, its
 * border values extended. When the field grid's j and k coordinates are constant along a target row
 * (a working grid built along the fixed axes), the field is first interpolated in (j, k) into one
 * line per row, and each voxel only lerps along that line.
 */
class FieldRows {
  private readonly q: number[];
  private readonly aligned: boolean;
  private readonly line: Float64Array;
  private readonly fx: Float64Array;
  private readonly fy: Float64Array;
  private readonly fz: Float64Array;

  constructor(
    private readonly field: GridField,
    private readonly target: Grid,
  ) {
    this.q = compose(invert(field.grid.affine), target.affine);
    this.aligned = Math.abs(this.q[4]!) < 1e-9 && Math.abs(this.q[8]!) < 1e-9;
    const nx = target.dims[0];
    this.line = new Float64Array(this.aligned ? 3 * field.grid.dims[0] : 0);
    this.fx = new Float64Array(nx);
    this.fy = new Float64Array(this.aligned ? 0 : nx);
    this.fz = new Float64Array(this.aligned ? 0 : nx);
  }

  /** Writes the field at the voxels of target row (j, k) to `out` (channel c at c·X + i). */
  sample(j: number, k: number, out: Float32Array): void {
    const q = this.q;
    const nx = this.target.dims[0];
    if (!this.aligned) {
      const { fx, fy, fz, field: f } = this;
      affineRow(q, j, k, nx, fx, fy, fz);
      trilinearRow(f.data, f.grid.dims, 3, fx, fy, fz, nx, out, 0, nx, true, 0, undefined);
      return;
    }
    const qx = q[1]! * j + q[2]! * k + q[3]!;
    const qy = q[5]! * j + q[6]! * k + q[7]!;
    const qz = q[9]! * j + q[10]! * k + q[11]!;
    const q0 = q[0]!;
    const [mx, my, mz] = this.field.grid.dims;
    const m = mx * my * mz;
    const data = this.field.data;
    const line = this.line;
    const [y0, dy, wy] = axisTap(qy, my, mx);
    const [z0, dz, wz] = axisTap(qz, mz, mx * my);
    for (let c = 0; c < 3; c++)
      for (let xi = 0, p = c * m + y0 + z0; xi < mx; xi++, p++) {
        const v00 = data[p]!;
        const v10 = data[p + dy]!;
        const v01 = data[p + dz]!;
        const v11 = data[p + dy + dz]!;
        const a = v00 + (v10 - v00) * wy;
        const b = v01 + (v11 - v01) * wy;
        line[c * mx + xi] = a + (b - a) * wz;
      }
    const dx = mx > 1 ? 1 : 0;
    const top = mx - 1;
    for (let t = 0; t < nx; t++) {
      let cx = qx + q0 * t;
      cx = cx < 0 ? 0 : cx > top ? top : cx;
      let x0 = Math.floor(cx);
      if (x0 > mx - 2) x0 = mx > 1 ? mx - 2 : 0;
      const w = cx - x0;
      const a0 = line[x0]!;
      const a1 = line[mx + x0]!;
      const a2 = line[2 * mx + x0]!;
      out[t] = a0 + (line[x0 + dx]! - a0) * w;
      out[nx + t] = a1 + (line[mx + x0 + dx]! - a1) * w;
      out[2 * nx + t] = a2 + (line[2 * mx + x0 + dx]! - a2) * w;
    }
  }
}

/** Fills the continuous source coordinates of target rows, one row (j, k) at a time. */
interface RowSource {
  readonly row: RowScratch;
  rowAt(j: number, k: number): void;
}

/** Source coordinates through a point function: one call per voxel (the general, slow form). */
class PointRows implements RowSource {
  readonly row: RowScratch;
  private readonly toSource: number[];
  constructor(
    private readonly target: Grid,
    source: Grid,
    private readonly transform: PointTransform,
  ) {
    this.row = new RowScratch(target.dims[0]);
    this.toSource = invert(source.affine);
  }
  rowAt(j: number, k: number): void {
    const { x, y, z } = this.row;
    for (let t = 0; t < this.target.dims[0]; t++) {
      const c = applyPoint(this.toSource, this.transform(applyPoint(this.target.affine, [t, j, k])));
      x[t] = c[0];
      y[t] = c[1];
      z[t] = c[2];
    }
  }
}

/** Runs `visit` on every row of `target` after `rows` has filled its coordinates. */
function eachRow(
  target: Grid,
  rows: RowSource,
  visit: (j: number, k: number, offset: number, x: Float64Array, y: Float64Array, z: Float64Array) => void,
): void {
  const [nx, ny, nz] = target.dims;
  const { x, y, z } = rows.row;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++) {
      rows.rowAt(j, k);
      visit(j, k, nx * (j + ny * k), x, y, z);
    }
}

/** Trilinear samples of `src` at the source coordinates `rows` gives for every voxel of `target`. */
function sampleRows(
  src: GridField,
  target: Grid,
  rows: RowSource,
  fill: number,
  valid?: Uint8Array,
): GridField {
  checkField(src, 'the source field');
  const n = voxelCount(target);
  if (valid && valid.length !== n) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `the validity mask holds ${valid.length} bytes; the target has ${n} voxels`,
    );
  }
  const out = new Float32Array(n * src.channels);
  const nx = target.dims[0];
  eachRow(target, rows, (_j, _k, offset, x, y, z) =>
    trilinearRow(src.data, src.grid.dims, src.channels, x, y, z, nx, out, offset, n, false, fill, valid),
  );
  return { grid: target, channels: src.channels, data: out };
}

/**
 * Source coordinates of every target voxel for T(x) = A·(x + v(x)), one target row at a time: the
 * target → source index map `S⁻¹·A·G` is stepped along the row, and v (on the target grid, or
 * interpolated from its own grid with the border extended, {@link FieldRows}) is added through the
 * linear part of `S⁻¹·A`.
 */
class PullBack implements RowSource {
  private readonly m: number[];
  private readonly lin: number[];
  private readonly direct: boolean;
  private readonly fieldRows: FieldRows | null = null;
  readonly row: RowScratch;

  constructor(
    private readonly target: Grid,
    source: Grid,
    affine: Mat4,
    private readonly field: GridField | undefined,
  ) {
    const toSource = compose(invert(source.affine), affine);
    this.m = compose(toSource, target.affine);
    this.lin = toSource;
    this.row = new RowScratch(target.dims[0]);
    this.direct = field ? sameGrid(field.grid, target) : true;
    if (field) {
      checkField(field, 'the displacement field', 3);
      if (!this.direct) this.fieldRows = new FieldRows(field, target);
    }
  }

  /** Fills `row.x/y/z` with the source coordinates of target row (j, k). */
  rowAt(j: number, k: number): void {
    const nx = this.target.dims[0];
    const { x, y, z, d } = this.row;
    affineRow(this.m, j, k, nx, x, y, z);
    const f = this.field;
    if (!f) return;
    let comp: Float32Array;
    let base: number;
    let stride: number;
    if (this.direct) {
      comp = f.data;
      base = nx * (j + this.target.dims[1] * k);
      stride = voxelCount(this.target);
    } else {
      this.fieldRows!.sample(j, k, d);
      comp = d;
      base = 0;
      stride = nx;
    }
    const l = this.lin;
    const l0 = l[0]!;
    const l1 = l[1]!;
    const l2 = l[2]!;
    const l4 = l[4]!;
    const l5 = l[5]!;
    const l6 = l[6]!;
    const l8 = l[8]!;
    const l9 = l[9]!;
    const l10 = l[10]!;
    for (let t = 0; t < nx; t++) {
      const u = comp[base + t]!;
      const v = comp[stride + base + t]!;
      const w = comp[2 * stride + base + t]!;
      x[t]! += l0 * u + l1 * v + l2 * w;
      y[t]! += l4 * u + l5 * v + l6 * w;
      z[t]! += l8 * u + l9 * v + l10 * w;
    }
  }
}

/**
 * Visits every row (j, k) of `target` with the world positions (LPS mm) T(x) = A·(x + v(x)) of its
 * voxels i = 0…X−1 in `x`, `y`, `z` (scratch arrays, overwritten for the next row): the building
 * block of outputs that need T itself (total displacement, inverse fields) rather than a sample.
 */
export function forEachMappedRow(
  target: Grid,
  affine: Mat4,
  displacement: GridField | undefined,
  visit: (j: number, k: number, x: Float64Array, y: Float64Array, z: Float64Array) => void,
): void {
  const world: Grid = { dims: [1, 1, 1], affine: IDENTITY };
  eachRow(target, new PullBack(target, world, affine, displacement), (j, k, _offset, x, y, z) =>
    visit(j, k, x, y, z),
  );
}

/**
 * Resamples `src` (any number of channels) onto `target` through T(x) = A·(x + v(x)), trilinearly:
 * output voxel x of `target` holds src at T(x). `affine` maps FIXED (target) world to MOVING (src)
 * world; `displacement` (3 channels, LPS mm) lives on `target` or on another grid, where it is
 * interpolated trilinearly with its border values extended. Outside src → `fill`; `valid`, when
 * given, receives 1 for voxels inside src and 0 elsewhere.
 */
export function resampleThroughField(
  src: GridField,
  target: Grid,
  affine: Mat4,
  displacement?: GridField,
  fill = 0,
  valid?: Uint8Array,
): GridField {
  return sampleRows(src, target, new PullBack(target, src.grid, affine, displacement), fill, valid);
}

/**
 * Resamples `src` onto `target`: with no transform on the same world positions, with a Mat4 (FIXED →
 * MOVING world) through {@link resampleThroughField}, with a function point by point (general but
 * slower: one call per voxel). Trilinear; outside src → `fill` (and 0 in `valid`).
 */
export function resampleToGrid(
  src: GridField,
  target: Grid,
  transform?: Mat4 | PointTransform,
  fill = 0,
  valid?: Uint8Array,
): GridField {
  const rows =
    typeof transform === 'function'
      ? new PointRows(target, src.grid, transform)
      : new PullBack(target, src.grid, transform ?? IDENTITY, undefined);
  return sampleRows(src, target, rows, fill, valid);
}

/**
 * Trilinear samples of `src` at world points (LPS mm, interleaved x, y, z): `channels × count` values,
 * channel-major. Points outside src → `fill` (and 0 in `valid`, one byte per point).
 */
export function sampleAtPoints(
  src: GridField,
  points: ArrayLike<number>,
  fill = 0,
  valid?: Uint8Array,
): Float32Array {
  checkField(src, 'the source field');
  if (points.length % 3 !== 0)
    throw new CuriaError('INVALID_ARGUMENT', 'points must be interleaved x, y, z triples');
  const count = points.length / 3;
  const row = new RowScratch(count);
  const m = invert(src.grid.affine);
  for (let t = 0; t < count; t++) {
    const px = points[3 * t]!;
    const py = points[3 * t + 1]!;
    const pz = points[3 * t + 2]!;
    row.x[t] = m[0]! * px + m[1]! * py + m[2]! * pz + m[3]!;
    row.y[t] = m[4]! * px + m[5]! * py + m[6]! * pz + m[7]!;
    row.z[t] = m[8]! * px + m[9]! * py + m[10]! * pz + m[11]!;
  }
  const out = new Float32Array(count * src.channels);
  trilinearRow(
    src.data,
    src.grid.dims,
    src.channels,
    row.x,
    row.y,
    row.z,
    count,
    out,
    0,
    count,
    false,
    fill,
    valid,
  );
  return out;
}

/**
 * Nearest-neighbour resampling of a label map (U8 or U16, kept) onto `target` through
 * T(x) = A·(x + v(x)) (see {@link resampleThroughField}); outside the source → `fill`.
 */
export function resampleLabels(
  src: LabelField,
  target: Grid,
  affine: Mat4 = IDENTITY,
  displacement?: GridField,
  fill = 0,
): LabelField {
  if (src.data.length !== voxelCount(src.grid)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `the label map holds ${src.data.length} voxels; its grid needs ${voxelCount(src.grid)}`,
    );
  }
  const n = voxelCount(target);
  const out = src.data instanceof Uint8Array ? new Uint8Array(n) : new Uint16Array(n);
  const nx = target.dims[0];
  eachRow(target, new PullBack(target, src.grid, affine, displacement), (_j, _k, offset, x, y, z) =>
    nearestRow(src.data, src.grid.dims, x, y, z, nx, out, offset, fill),
  );
  return { grid: target, data: out };
}

/**
 * Average pooling by `factor` along every axis: each output voxel is the mean of a factor³ block
 * (the last block along an axis may be partial: the mean of what exists), placed at the block's
 * centre when whole. For coarse feature grids (e.g. MIND at the optimiser's resolution).
 */
export function poolField(f: GridField, factor: number): GridField {
  checkField(f, 'the field');
  if (!(Number.isInteger(factor) && factor >= 1)) {
    throw new CuriaError('INVALID_ARGUMENT', `the pooling factor must be a positive integer, got ${factor}`);
  }
  if (factor === 1) return f;
  const [nx, ny, nz] = f.grid.dims;
  const dims: [number, number, number] = [
    Math.ceil(nx / factor),
    Math.ceil(ny / factor),
    Math.ceil(nz / factor),
  ];
  const [mx, my, mz] = dims;
  const half = (factor - 1) / 2;
  const a = f.grid.affine;
  const origin = applyPoint(a, [half, half, half]);
  const affine = [
    a[0]! * factor,
    a[1]! * factor,
    a[2]! * factor,
    origin[0],
    a[4]! * factor,
    a[5]! * factor,
    a[6]! * factor,
    origin[1],
    a[8]! * factor,
    a[9]! * factor,
    a[10]! * factor,
    origin[2],
    0,
    0,
    0,
    1,
  ];
  const n = nx * ny * nz;
  const m = mx * my * mz;
  const out = new Float32Array(m * f.channels);
  const count = new Float32Array(m);
  for (let k = 0; k < nz; k++) {
    const K = Math.floor(k / factor);
    for (let j = 0; j < ny; j++) {
      const J = Math.floor(j / factor);
      const rowIn = nx * (j + ny * k);
      const rowOut = mx * (J + my * K);
      for (let i = 0; i < nx; i++) {
        const q = rowOut + Math.floor(i / factor);
        count[q]! += 1;
        for (let c = 0; c < f.channels; c++) out[c * m + q]! += f.data[c * n + rowIn + i]!;
      }
    }
  }
  for (let c = 0; c < f.channels; c++) for (let q = 0; q < m; q++) out[c * m + q]! /= count[q]!;
  return { grid: { dims, affine }, channels: f.channels, data: out };
}

/**
 * Copies every canonical slice of `volume` (scaling applied) into `out` in input order through the
 * slice walks; `check`, when given, is called on every slice before it is stored.
 */
async function scatterCanonical(
  volume: Volume,
  out: Float32Array | Uint8Array | Uint16Array,
  check?: (slice: Float64Array, length: number) => void,
): Promise<void> {
  const g = volume.geometry;
  const [ni, nj] = g.inputDims;
  const [slices, rows, cols] = g.canonicalDims;
  let buf: Float64Array | undefined;
  for (let s = 0; s < slices; s++) {
    buf = await volume.readCanonicalSlice(s, buf);
    check?.(buf, rows * cols);
    const w = sliceWalk(g, s, [1, ni, ni * nj]);
    for (let r = 0, o = 0; r < rows; r++) {
      let p = w.base + r * w.rowStep;
      for (let c = 0; c < cols; c++, p += w.colStep) out[p] = buf[o++]!;
    }
  }
}

/**
 * Every voxel of an opened volume (scaling applied) as a one-channel field on its INPUT grid
 * (stored voxel order, LPS affine), read canonical slice by canonical slice.
 */
export async function volumeField(volume: Volume): Promise<GridField> {
  const grid = inputGrid(volume.geometry);
  const data = new Float32Array(voxelCount(grid));
  await scatterCanonical(volume, data);
  return { grid, channels: 1, data };
}

/**
 * A label map volume as a {@link LabelField} on its input grid: U8 when stored as 8-bit, else U16.
 * Values must be integers in range (INVALID_ARGUMENT otherwise).
 */
export async function volumeLabels(volume: Volume): Promise<LabelField> {
  const grid = inputGrid(volume.geometry);
  const small = volume.voxelType === 'uint8' || volume.voxelType === 'int8';
  const data = small ? new Uint8Array(voxelCount(grid)) : new Uint16Array(voxelCount(grid));
  const max = small ? 255 : 65535;
  await scatterCanonical(volume, data, (slice, length) => {
    for (let i = 0; i < length; i++) {
      const v = slice[i]!;
      if (!(v >= 0 && v <= max && Number.isInteger(v))) {
        throw new CuriaError(
          'INVALID_ARGUMENT',
          `the label map holds ${v}, not an integer label in 0..${max}`,
        );
      }
    }
  });
  return { grid, data };
}
