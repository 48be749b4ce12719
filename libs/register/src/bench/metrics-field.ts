/**
 * Displacement-field measures of the registration bench, for fields on the fixed grid in the
 * conventions of `../field.ts` (3 channels, channel-major, LPS mm, T(x) = x + u(x)):
 * - end-point error: mean (and max) |u_a(x) - u_b(x)| in mm over a voxel mask;
 * - Jacobian determinant of T: det(I + ∂u/∂x), derivatives in world mm (central differences in voxel
 *   index space, mapped through the grid's inverse 3×3), on interior voxels (one voxel from every face);
 * - folding: the fraction of those voxels with det ≤ 0; SDlogJ (Learn2Reg): the standard deviation of
 *   log(clip(det, 1e-9, 1e9)) over the same voxels.
 *
 * TODO(#16): `jacobianDeterminants` is the bench's own until the engine's `libs/register/src/jacobian.ts`
 * lands on main; then replace it with the engine's and keep only the statistics here.
 */
import { voxelCount, type GridField } from '../field.js';
import { inv3, linearOf } from './sampling.js';

/** Mean and largest end-point error (mm) between two fields on one grid over `mask` (every voxel when null). */
export function endPointError(
  a: GridField,
  b: GridField,
  mask: Uint8Array | null,
): { mean: number; max: number; voxels: number } {
  if (a.channels !== 3 || b.channels !== 3) throw new Error('end-point error needs 3-channel fields');
  const n = voxelCount(a.grid);
  if (voxelCount(b.grid) !== n || a.data.length !== 3 * n || b.data.length !== 3 * n)
    throw new Error('end-point error needs two fields on one grid');
  let sum = 0;
  let max = 0;
  let count = 0;
  for (let p = 0; p < n; p++) {
    if (mask && !mask[p]) continue;
    const e = Math.hypot(
      a.data[p]! - b.data[p]!,
      a.data[n + p]! - b.data[n + p]!,
      a.data[2 * n + p]! - b.data[2 * n + p]!,
    );
    sum += e;
    max = Math.max(max, e);
    count++;
  }
  return { mean: count ? sum / count : NaN, max, voxels: count };
}

/** 1 where the label is one of `values`. */
export function labelMask(labels: ArrayLike<number>, values: readonly number[]): Uint8Array {
  const set = new Set(values);
  const out = new Uint8Array(labels.length);
  for (let p = 0; p < labels.length; p++) if (set.has(labels[p]!)) out[p] = 1;
  return out;
}

/**
 * det J of x ↦ x + u(x) at the interior voxels (NaN on the grid's faces). The bench's own helper:
 * replace with the engine's `jacobian.ts` when it lands (see the file comment).
 */
export function jacobianDeterminants(u: GridField): Float32Array {
  if (u.channels !== 3) throw new Error('the Jacobian needs a 3-channel displacement');
  const [X, Y, Z] = u.grid.dims;
  const n = X * Y * Z;
  // ∂u/∂x = (∂u/∂index) · V⁻¹, V = ∂x/∂index, the grid's 3×3.
  const vi = inv3(linearOf(u.grid.affine));
  const out = new Float32Array(n).fill(NaN);
  const strides = [1, X, X * Y];
  const d = new Float64Array(9);
  const J = new Float64Array(9);
  for (let k = 1; k < Z - 1; k++)
    for (let j = 1; j < Y - 1; j++)
      for (let i = 1; i < X - 1; i++) {
        const p = i + X * (j + Y * k);
        for (let r = 0; r < 3; r++)
          for (let a = 0; a < 3; a++) {
            const s = strides[a]!;
            d[3 * r + a] = 0.5 * (u.data[r * n + p + s]! - u.data[r * n + p - s]!);
          }
        for (let r = 0; r < 3; r++)
          for (let c = 0; c < 3; c++)
            J[3 * r + c] =
              (r === c ? 1 : 0) +
              d[3 * r]! * vi[c]! +
              d[3 * r + 1]! * vi[3 + c]! +
              d[3 * r + 2]! * vi[6 + c]!;
        out[p] =
          J[0]! * (J[4]! * J[8]! - J[5]! * J[7]!) -
          J[1]! * (J[3]! * J[8]! - J[5]! * J[6]!) +
          J[2]! * (J[3]! * J[7]! - J[4]! * J[6]!);
      }
  return out;
}

/** Folding fraction, SDlogJ (Learn2Reg) and the determinant's range over the interior voxels. */
export function jacobianStats(u: GridField): {
  foldingFraction: number;
  sdLogJ: number;
  minDet: number;
  maxDet: number;
  voxels: number;
} {
  const det = jacobianDeterminants(u);
  let count = 0;
  let folded = 0;
  let s = 0;
  let ss = 0;
  let minDet = Infinity;
  let maxDet = -Infinity;
  for (const v of det) {
    if (Number.isNaN(v)) continue;
    count++;
    if (v <= 0) folded++;
    minDet = Math.min(minDet, v);
    maxDet = Math.max(maxDet, v);
    const l = Math.log(Math.min(Math.max(v, 1e-9), 1e9));
    s += l;
    ss += l * l;
  }
  const mean = s / count;
  return {
    foldingFraction: folded / count,
    sdLogJ: Math.sqrt(Math.max(0, ss / count - mean * mean)),
    minDet,
    maxDet,
    voxels: count,
  };
}
