import type { PhantomOrientation } from './options.js';

/**
 * The voxel-to-RAS affine (4x4 row-major, as NIfTI sform / nibabel) of a phantom grid whose centre
 * is the world origin. `LPS` storage: i -> Left, j -> Posterior, k -> Superior, so the first two
 * columns are negative in RAS; `RAS` storage: i -> Right, j -> Anterior, k -> Superior.
 */
export function phantomAffine(
  dims: readonly [number, number, number],
  spacing: readonly [number, number, number],
  orientation: PhantomOrientation,
): number[] {
  const s = orientation === 'LPS' ? -1 : 1;
  const [cx, cy, cz] = dims.map((n) => (n - 1) / 2) as [number, number, number];
  const [sx, sy, sz] = spacing;
  // `+ 0` turns -0 into 0 so affines compare and print cleanly.
  return [s * sx, 0, 0, -s * sx * cx + 0, 0, s * sy, 0, -s * sy * cy + 0, 0, 0, sz, -sz * cz + 0, 0, 0, 0, 1];
}

/** Applies a 4x4 row-major affine to (i, j, k). */
export function applyAffine(a: readonly number[], i: number, j: number, k: number): [number, number, number] {
  return [0, 1, 2].map((r) => a[r * 4]! * i + a[r * 4 + 1]! * j + a[r * 4 + 2]! * k + a[r * 4 + 3]!) as [
    number,
    number,
    number,
  ];
}
