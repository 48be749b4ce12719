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
