import { CuriaError } from '@curia/errors';
import { columnNorm, flipWorldXY, mat4Multiply, type Geometry } from '@curia/volume';

import type { Grid, Mat4 } from './field.js';

/** A point or vector in world (LPS mm) or voxel coordinates. */
export type Vec3 = [number, number, number];

/** The identity transform (e.g. A when the moving image is already in place). */
export const IDENTITY: Mat4 = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];

/** `a · b`: the transform that applies `b` first, then `a`. */
export function compose(a: Mat4, b: Mat4): number[] {
  return mat4Multiply(a, b);
}

/**
 * Inverse of an affine 4×4 (last row 0 0 0 1). Throws INVALID_ARGUMENT when its 3×3 part is singular
 * or not finite.
 */
export function invert(m: Mat4): number[] {
  const e = (r: number, c: number): number => m[4 * r + c]!;
  // Cofactors of the 3×3 part: inverse = adjugate / det.
  const cof = (r: number, c: number): number =>
    e((r + 1) % 3, (c + 1) % 3) * e((r + 2) % 3, (c + 2) % 3) -
    e((r + 1) % 3, (c + 2) % 3) * e((r + 2) % 3, (c + 1) % 3);
  const det = e(0, 0) * cof(0, 0) + e(0, 1) * cof(0, 1) + e(0, 2) * cof(0, 2);
  const volume = columnNorm(m, 0) * columnNorm(m, 1) * columnNorm(m, 2);
  if (!(Number.isFinite(det) && Math.abs(det) > 1e-12 * volume)) {
    throw new CuriaError('INVALID_ARGUMENT', 'the affine is singular (its 3x3 part has no inverse)');
  }
  const out = new Array<number>(16).fill(0);
  out[15] = 1;
  for (let r = 0; r < 3; r++) {
    let t = 0;
    for (let c = 0; c < 3; c++) {
      const v = cof(c, r) / det;
      out[4 * r + c] = v;
      t -= v * e(c, 3);
    }
    out[4 * r + 3] = t;
  }
  return out;
}

/** `m · (p, 1)`: a point through an affine. */
export function applyPoint(m: Mat4, p: readonly number[]): Vec3 {
  const x = p[0]!,
    y = p[1]!,
    z = p[2]!;
  return [
    m[0]! * x + m[1]! * y + m[2]! * z + m[3]!,
    m[4]! * x + m[5]! * y + m[6]! * z + m[7]!,
    m[8]! * x + m[9]! * y + m[10]! * z + m[11]!,
  ];
}

/** World position (LPS mm) of the continuous voxel position `ijk` of `g`. */
export function gridToWorld(g: Grid, ijk: readonly number[]): Vec3 {
  return applyPoint(g.affine, ijk);
}

/** Continuous voxel position in `g` (voxel centres at integers) of the world point `p` (LPS mm). */
export function worldToVoxel(g: Grid, p: readonly number[]): Vec3 {
  return applyPoint(invert(g.affine), p);
}

/** Voxel spacing of a grid along its axes i, j, k (mm): the norms of its affine's columns. */
export function gridSpacing(g: Grid): Vec3 {
  return [columnNorm(g.affine, 0), columnNorm(g.affine, 1), columnNorm(g.affine, 2)];
}

/** The voxel → LPS world affine of a volume's input grid (a NIfTI's RAS affine has x and y negated). */
export function lpsAffineOf(geometry: Pick<Geometry, 'inputAffine' | 'inputFrame'>): number[] {
  return geometry.inputFrame === 'RAS' ? flipWorldXY(geometry.inputAffine) : [...geometry.inputAffine];
}

/** A volume's input grid (its stored voxel order) in LPS. */
export function inputGrid(geometry: Pick<Geometry, 'inputDims' | 'inputAffine' | 'inputFrame'>): Grid {
  return { dims: [...geometry.inputDims], affine: lpsAffineOf(geometry) };
}

/**
 * The isotropic working grid of a registration, in the FIXED image's frame: its axes are the fixed
 * affine's voxel axes normalised to `spacingMm`, its voxel (0, 0, 0) is the centre of fixed voxel
 * (0, 0, 0), and it covers the box of fixed voxel centres: along an axis of n fixed voxels of spacing
 * s, ⌈(n − 1)·s / spacingMm⌉ + 1 nodes (the last one may lie up to one working voxel past the last
 * fixed centre). A 3 mm fixed volume at 3 mm gives its own grid.
 */
export function workingGrid(
  fixed: Pick<Geometry, 'inputDims' | 'inputAffine' | 'inputFrame'>,
  spacingMm = 3,
): Grid {
  if (!(spacingMm > 0 && Number.isFinite(spacingMm))) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `working grid spacing must be a positive number of mm, got ${spacingMm}`,
    );
  }
  const a = lpsAffineOf(fixed);
  const out = [...a];
  const dims: Vec3 = [1, 1, 1];
  for (let axis = 0; axis < 3; axis++) {
    const s = columnNorm(a, axis);
    if (!(s > 0)) throw new CuriaError('INVALID_ARGUMENT', `the fixed affine has a zero voxel axis ${axis}`);
    const extent = (fixed.inputDims[axis]! - 1) * s;
    // A relative tolerance keeps 363 mm / 3 mm at 121 steps despite rounding.
    dims[axis] = Math.ceil(extent / spacingMm - 1e-9) + 1;
    for (let r = 0; r < 3; r++) out[4 * r + axis] = (a[4 * r + axis]! / s) * spacingMm;
  }
  return { dims, affine: out };
}

/** Slices k0 ≤ k < k1 of a grid as a grid of their own (for computing a large output slab by slab). */
export function gridSlab(g: Grid, k0: number, k1: number): Grid {
  if (!(Number.isInteger(k0) && Number.isInteger(k1) && k0 >= 0 && k1 > k0 && k1 <= g.dims[2])) {
    throw new CuriaError('OUT_OF_RANGE', `slab [${k0}, ${k1}) is not inside 0..${g.dims[2]}`);
  }
  const origin = applyPoint(g.affine, [0, 0, k0]);
  const a = [...g.affine];
  a[3] = origin[0];
  a[7] = origin[1];
  a[11] = origin[2];
  return { dims: [g.dims[0], g.dims[1], k1 - k0], affine: a };
}
