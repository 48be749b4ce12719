/** A 4x4 homogeneous matrix stored row-major: element (r, c) is at index `r * 4 + c`. */
export type Mat4 = readonly number[];

/** Row-major product `a · b`. */
export function mat4Multiply(a: Mat4, b: Mat4): number[] {
  const out = new Array<number>(16).fill(0);
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[r * 4 + k]! * b[k * 4 + c]!;
      out[r * 4 + c] = s;
    }
  }
  return out;
}

/** Converts an affine between RAS and LPS world frames (the same matrix does both directions). */
export function flipWorldXY(a: Mat4): number[] {
  return mat4Multiply([-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], a);
}

/** Euclidean norm of the voxel-axis column `axis` (0..2) of the 3x3 part: the voxel spacing along it. */
export function columnNorm(a: Mat4, axis: number): number {
  return Math.hypot(a[axis]!, a[4 + axis]!, a[8 + axis]!);
}

/** True when every element is finite. */
export function isFiniteMatrix(a: Mat4): boolean {
  return a.length === 16 && a.every((v) => Number.isFinite(v));
}

/**
 * Largest distance (mm) between the voxel centres two affines give the corners of a grid of `dims`
 * voxels: how far apart two grids of the same size are. Each affine maps (i, j, k, 1) to world mm
 * in its frame (RAS or LPS; they are reconciled).
 */
export function gridCornerDistanceMm(
  a: Mat4,
  aFrame: 'RAS' | 'LPS',
  b: Mat4,
  bFrame: 'RAS' | 'LPS',
  dims: readonly number[],
): number {
  const la = aFrame === 'RAS' ? flipWorldXY(a) : a;
  const lb = bFrame === 'RAS' ? flipWorldXY(b) : b;
  let worst = 0;
  for (let corner = 0; corner < 8; corner++) {
    const v = [0, 1, 2].map((ax) => ((corner >> ax) & 1 ? dims[ax]! - 1 : 0));
    for (let r = 0; r < 3; r++) {
      let d = la[r * 4 + 3]! - lb[r * 4 + 3]!;
      for (let c = 0; c < 3; c++) d += (la[r * 4 + c]! - lb[r * 4 + c]!) * v[c]!;
      worst = Math.max(worst, Math.abs(d));
    }
  }
  return worst;
}
