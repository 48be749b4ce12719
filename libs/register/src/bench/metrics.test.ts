import { describe, expect, it } from 'vitest';

import type { Grid, GridField } from '../field.js';
import { endPointError, jacobianDeterminants, jacobianStats, labelMask } from './metrics-field.js';
import { dice } from '@curia/volume';

import { organDice } from './metrics-labels.js';
import { det3, voxelToWorld, type Vec3 } from './sampling.js';

/** Oblique, anisotropic: derivatives must go through the grid's inverse 3×3. */
const GRID: Grid = {
  dims: [9, 8, 7],
  affine: [
    2 * Math.cos(0.3),
    -3 * Math.sin(0.3),
    0,
    5,
    2 * Math.sin(0.3),
    3 * Math.cos(0.3),
    0,
    -4,
    0,
    0,
    4,
    1,
    0,
    0,
    0,
    1,
  ],
};
const N = 9 * 8 * 7;

/** A displacement on GRID from its value at each world position. */
function fieldOf(u: (x: Vec3, out: Vec3) => void): GridField {
  const data = new Float32Array(3 * N);
  const x: Vec3 = [0, 0, 0];
  const v: Vec3 = [0, 0, 0];
  for (let k = 0, p = 0; k < 7; k++)
    for (let j = 0; j < 8; j++)
      for (let i = 0; i < 9; i++, p++) {
        u(voxelToWorld(GRID, i, j, k, x), v);
        for (let r = 0; r < 3; r++) data[r * N + p] = v[r]!;
      }
  return { grid: GRID, channels: 3, data };
}

/** u(x) = (A - I)·x + b on GRID (so det J = det A everywhere). */
function linearField(A: readonly number[], b: Vec3 = [0, 0, 0]): GridField {
  return fieldOf((x, out) => {
    for (let r = 0; r < 3; r++)
      out[r] = A[3 * r]! * x[0] + A[3 * r + 1]! * x[1] + A[3 * r + 2]! * x[2] - x[r]! + b[r]!;
  });
}

describe('bench:register metrics', () => {
  it('end-point error: 0 for identical fields, |offset| for a constant one, over the mask only', () => {
    const a = linearField([1.1, 0.2, 0, 0, 0.9, 0.1, 0, 0, 1]);
    expect(endPointError(a, a, null)).toEqual({ mean: 0, max: 0, voxels: N });
    const b = { ...a, data: Float32Array.from(a.data, (v, i) => v + (i < N ? 3 : i < 2 * N ? 4 : 0)) };
    const e = endPointError(a, b, null);
    expect(e.mean).toBeCloseTo(5, 4);
    expect(e.max).toBeCloseTo(5, 4);
    const mask = new Uint8Array(N);
    mask[3] = 1;
    mask[77] = 1;
    expect(endPointError(a, b, mask).voxels).toBe(2);
    expect(() => endPointError(a, { ...a, channels: 1 }, null)).toThrow();
  });

  it('Dice: 1 for identical labels (every organ row and the mean), 0 when disjoint, 1 when both are empty', () => {
    const labels = Uint8Array.from({ length: 200 }, (_, i) => [0, 1, 2, 3, 5, 6, 7][i % 7]!);
    const d = organDice(labels, labels);
    for (const v of Object.values(d)) expect(v).toBe(1);
    expect(Object.keys(d)).toEqual([
      'spleen',
      'kidney_right',
      'kidney_left',
      'kidneys',
      'liver',
      'stomach',
      'mean',
    ]);
    expect(dice([1, 1, 0, 0], [0, 0, 1, 1], [1])).toBe(0);
    expect(dice([0, 0], [0, 0], [5])).toBe(1);
    // Kidneys merged: a right kidney predicted as left is wrong per side, right for the pair.
    expect(dice([2, 3], [3, 2], [2])).toBe(0);
    expect(dice([2, 3], [3, 2], [2, 3])).toBe(1);
    expect(dice([1, 1, 1, 0], [1, 1, 0, 0], [1])).toBeCloseTo(0.8, 10);
    expect(labelMask([0, 1, 4, 5], [1, 5])).toEqual(Uint8Array.of(0, 1, 0, 1));
  });

  it('Jacobian: det 1 and no folding for u = 0; det A for a linear map on an oblique grid; folding counted', () => {
    const zero: GridField = { grid: GRID, channels: 3, data: new Float32Array(3 * N) };
    const z = jacobianStats(zero);
    expect(z).toMatchObject({ foldingFraction: 0, minDet: 1, maxDet: 1, voxels: 7 * 6 * 5 });
    expect(z.sdLogJ).toBe(0);
    const A = [1.2, 0.1, -0.05, 0.03, 0.85, 0.2, 0, -0.1, 1.1];
    const det = jacobianDeterminants(linearField(A, [3, -2, 1]));
    expect(Number.isNaN(det[0]!)).toBe(true); // a face voxel
    for (const v of det) if (!Number.isNaN(v)) expect(v).toBeCloseTo(det3(A), 4);
    expect(jacobianStats(linearField(A)).sdLogJ).toBeLessThan(1e-4);
    // A reflection folds everything.
    const f = jacobianStats(linearField([-1, 0, 0, 0, 1, 0, 0, 0, 1]));
    expect(f.foldingFraction).toBe(1);
    expect(f.minDet).toBeCloseTo(-1, 4);
  });

  it('SDlogJ is the standard deviation of log(clip(det J)) (Learn2Reg)', () => {
    // u_z = z up to slice 3 (det 2), then u_z = z_3 − (z − z_3)/2 beyond (det 0.5).
    const z3 = GRID.affine[11]! + 4 * 3;
    const s = jacobianStats(
      fieldOf((x, out) => {
        out[0] = 0;
        out[1] = 0;
        out[2] = x[2] <= z3 ? x[2] : z3 - 0.5 * (x[2] - z3);
      }),
    );
    // Interior slices k = 1..5: k = 1, 2 at det 2; k = 3 straddles (central difference: det (2 + 0.5)/2 = 1.25); k = 4, 5 at 0.5.
    const logs = [Math.log(2), Math.log(2), Math.log(1.25), Math.log(0.5), Math.log(0.5)];
    const mean = logs.reduce((a, b) => a + b, 0) / logs.length;
    const sd = Math.sqrt(logs.reduce((a, b) => a + (b - mean) ** 2, 0) / logs.length);
    expect(s.sdLogJ).toBeCloseTo(sd, 4);
    expect(s.foldingFraction).toBe(0);
  });
});
