import { CuriaError } from '@curia/errors';

import { columnNorm, flipWorldXY, mat4Multiply, type Mat4 } from './affine.js';
import { axcodesOf, ioOrientation } from './axcodes.js';

/** Where one canonical axis comes from in the input grid. */
export interface AxisMapping {
  /** Input voxel axis (0 = i, 1 = j, 2 = k) this canonical axis walks along. */
  readonly inputAxis: 0 | 1 | 2;
  /** True when the canonical axis runs against the input axis (index n-1-t). */
  readonly flip: boolean;
}

/**
 * Input and canonical geometry of a volume. The Curia canonical frame is LPS: slices are axial and
 * ordered inferior -> superior; inside a slice, rows run toward Posterior and columns toward
 * patient Left, so `slice[r][c]` has r = P index and c = L index. Everything is JSON-serialisable.
 */
export interface Geometry {
  /** Input grid size (i, j, k) as stored. */
  readonly inputDims: readonly [number, number, number];
  /** Voxel spacing in mm along input axes (i, j, k): norms of the affine columns. */
  readonly inputSpacing: readonly [number, number, number];
  /**
   * Input voxel-to-world affine, 4x4 row-major, mapping (i, j, k, 1) to world mm in `inputFrame`
   * (NIfTI affines are RAS, DICOM affines are LPS).
   */
  readonly inputAffine: readonly number[];
  readonly inputFrame: 'RAS' | 'LPS';
  /** nibabel `aff2axcodes` of the input (letters name where each axis points), e.g. "RAS". */
  readonly inputAxcodes: string;
  /** Canonical size: [slices, rows, cols]. */
  readonly canonicalDims: readonly [number, number, number];
  /** Canonical spacing in mm: [slice (S), row (P), col (L)]. */
  readonly canonicalSpacing: readonly [number, number, number];
  /** Canonical voxel-to-LPS affine, 4x4 row-major, mapping (col, row, slice, 1) to LPS mm. */
  readonly canonicalAffine: readonly number[];
  /** How each canonical axis maps to the input grid. */
  readonly axes: { readonly slice: AxisMapping; readonly row: AxisMapping; readonly col: AxisMapping };
  /** For each canonical slice k: its index along the input axis `axes.slice.inputAxis`. */
  readonly sliceInputIndex: readonly number[];
}

/** Derives the canonical geometry of a grid from its affine (no resampling: permute and flip only). */
export function computeGeometry(
  inputDims: readonly [number, number, number],
  inputAffine: Mat4,
  inputFrame: 'RAS' | 'LPS',
): Geometry {
  const lps = inputFrame === 'RAS' ? flipWorldXY(inputAffine) : [...inputAffine];
  const ori = ioOrientation(lps);
  const mapFor = (world: 0 | 1 | 2): AxisMapping => {
    const v = ori.findIndex((o) => o.worldAxis === world);
    if (v < 0) throw new CuriaError('INTERNAL', `no voxel axis maps to world axis ${world}`);
    return { inputAxis: v as 0 | 1 | 2, flip: ori[v]!.sign < 0 };
  };
  const col = mapFor(0);
  const row = mapFor(1);
  const slice = mapFor(2);
  const n = (m: AxisMapping): number => inputDims[m.inputAxis];
  // P maps canonical (col, row, slice, 1) to input (i, j, k, 1).
  const p = new Array<number>(16).fill(0);
  p[15] = 1;
  [col, row, slice].forEach((m, t) => {
    p[m.inputAxis * 4 + t] = m.flip ? -1 : 1;
    p[m.inputAxis * 4 + 3] = m.flip ? n(m) - 1 : 0;
  });
  const sliceCount = n(slice);
  const sliceInputIndex = Array.from({ length: sliceCount }, (_, k) => (slice.flip ? sliceCount - 1 - k : k));
  const spacing = [0, 1, 2].map((a) => columnNorm(inputAffine, a)) as [number, number, number];
  return {
    inputDims: [...inputDims] as [number, number, number],
    inputSpacing: spacing,
    inputAffine: [...inputAffine],
    inputFrame,
    inputAxcodes: axcodesOf(inputAffine, inputFrame),
    canonicalDims: [n(slice), n(row), n(col)],
    canonicalSpacing: [spacing[slice.inputAxis], spacing[row.inputAxis], spacing[col.inputAxis]],
    canonicalAffine: mat4Multiply(lps, p),
    axes: { slice, row, col },
    sliceInputIndex,
  };
}

/**
 * Maps a canonical voxel (slice, row, col) back to its input voxel index [i, j, k]; use it to
 * return masks or coordinates in the caller's grid.
 */
export function canonicalToInputIndex(
  g: Geometry,
  slice: number,
  row: number,
  col: number,
): [number, number, number] {
  const [ns, nr, nc] = g.canonicalDims;
  if (!(slice >= 0 && slice < ns && row >= 0 && row < nr && col >= 0 && col < nc)) {
    throw new CuriaError(
      'OUT_OF_RANGE',
      `canonical index (${slice}, ${row}, ${col}) is outside [${ns}, ${nr}, ${nc}] (slice, row, col)`,
    );
  }
  const out: [number, number, number] = [0, 0, 0];
  const put = (m: AxisMapping, t: number): void => {
    out[m.inputAxis] = m.flip ? g.inputDims[m.inputAxis] - 1 - t : t;
  };
  put(g.axes.slice, slice);
  put(g.axes.row, row);
  put(g.axes.col, col);
  return out;
}
