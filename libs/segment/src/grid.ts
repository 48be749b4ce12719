import type { Geometry } from '@curia/volume';

/**
 * What the engine needs of a study's geometry: the input grid, its affine, and how canonical axes
 * (rows → Posterior, columns → patient Left, slices inferior → superior) map onto input axes.
 * A volume's {@link Geometry} is one; a service builds one from the wire's CanonicalGeometry.
 */
export type StudyGrid = Pick<
  Geometry,
  'inputDims' | 'inputSpacing' | 'inputAffine' | 'inputFrame' | 'canonicalDims' | 'axes'
>;

/** The model's image and token grids. */
export interface ModelGrid {
  /** Model input edge in pixels (512 for Curia). */
  readonly imageSize: number;
  /** Patch edge in pixels (16 for Curia). */
  readonly patchSize: number;
}

/** Token grid side G = imageSize / patchSize. */
export function tokenGridSize(m: ModelGrid): number {
  return m.imageSize / m.patchSize;
}

/**
 * Offsets into an input-grid array in NIfTI order (i fastest: index = i + n0·(j + n1·k)) of a
 * canonical slice's pixels: pixel (r, c) of canonical slice s is at `sliceBase(s) + rowOffset[r] + colOffset[c]`.
 */
export class CanonicalToInput {
  readonly rowOffset: Int32Array;
  readonly colOffset: Int32Array;
  private readonly strides: readonly [number, number, number];

  constructor(private readonly grid: StudyGrid) {
    const [n0, n1] = grid.inputDims;
    this.strides = [1, n0, n0 * n1];
    const [, rows, cols] = grid.canonicalDims;
    this.rowOffset = this.offsets(grid.axes.row, rows);
    this.colOffset = this.offsets(grid.axes.col, cols);
  }

  /** Number of input voxels. */
  get voxels(): number {
    const [n0, n1, n2] = this.grid.inputDims;
    return n0 * n1 * n2;
  }

  /** Offset of canonical slice `s`'s pixel (0, 0) without the row and column terms. */
  sliceBase(s: number): number {
    const a = this.grid.axes.slice;
    const n = this.grid.inputDims[a.inputAxis];
    return (a.flip ? n - 1 - s : s) * this.strides[a.inputAxis];
  }

  private offsets(a: { readonly inputAxis: 0 | 1 | 2; readonly flip: boolean }, size: number): Int32Array {
    const n = this.grid.inputDims[a.inputAxis];
    const stride = this.strides[a.inputAxis];
    return Int32Array.from({ length: size }, (_, t) => (a.flip ? n - 1 - t : t) * stride);
  }
}

/** A continuous position on the canonical grid: slice, row and column (pixel centres at integers). */
export interface CanonicalPosition {
  readonly slice: number;
  readonly row: number;
  readonly col: number;
}

/** The canonical position of a continuous input-voxel position (i, j, k), voxel centres at integers. */
export function inputToCanonical(grid: StudyGrid, v: readonly [number, number, number]): CanonicalPosition {
  const at = (a: { readonly inputAxis: 0 | 1 | 2; readonly flip: boolean }): number =>
    a.flip ? grid.inputDims[a.inputAxis] - 1 - v[a.inputAxis] : v[a.inputAxis];
  return { slice: at(grid.axes.slice), row: at(grid.axes.row), col: at(grid.axes.col) };
}

/**
 * The continuous input-voxel position of a patient position in millimetres given in `frame`
 * (inverse of the input affine). Null when the affine is singular.
 */
export function worldToInput(
  grid: StudyGrid,
  xyz: readonly [number, number, number],
  frame: 'RAS' | 'LPS',
): [number, number, number] | null {
  const a = grid.inputAffine;
  // World in the affine's own frame: RAS and LPS differ by the signs of x and y.
  const flip = frame !== grid.inputFrame ? -1 : 1;
  const w = [xyz[0] * flip - a[3]!, xyz[1] * flip - a[7]!, xyz[2] - a[11]!];
  const m = [a[0]!, a[1]!, a[2]!, a[4]!, a[5]!, a[6]!, a[8]!, a[9]!, a[10]!];
  const det =
    m[0]! * (m[4]! * m[8]! - m[5]! * m[7]!) -
    m[1]! * (m[3]! * m[8]! - m[5]! * m[6]!) +
    m[2]! * (m[3]! * m[7]! - m[4]! * m[6]!);
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) return null;
  const inv = [
    (m[4]! * m[8]! - m[5]! * m[7]!) / det,
    (m[2]! * m[7]! - m[1]! * m[8]!) / det,
    (m[1]! * m[5]! - m[2]! * m[4]!) / det,
    (m[5]! * m[6]! - m[3]! * m[8]!) / det,
    (m[0]! * m[8]! - m[2]! * m[6]!) / det,
    (m[2]! * m[3]! - m[0]! * m[5]!) / det,
    (m[3]! * m[7]! - m[4]! * m[6]!) / det,
    (m[1]! * m[6]! - m[0]! * m[7]!) / det,
    (m[0]! * m[4]! - m[1]! * m[3]!) / det,
  ];
  return [0, 1, 2].map((r) => inv[r * 3]! * w[0]! + inv[r * 3 + 1]! * w[1]! + inv[r * 3 + 2]! * w[2]!) as [
    number,
    number,
    number,
  ];
}
