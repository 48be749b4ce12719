import { describe, expect, it } from 'vitest';

import { voxelCount } from './field.js';
import { applyPoint, type Vec3 } from './grid.js';
import { foldingFraction, jacobianDeterminant, jacobianStats, learn2regSdLogJ, sdLogJ } from './jacobian.js';
import { fieldFrom, obliqueGrid } from './testing.js';

const det3 = (m: number[][]): number =>
  m[0]![0]! * (m[1]![1]! * m[2]![2]! - m[1]![2]! * m[2]![1]!) -
  m[0]![1]! * (m[1]![0]! * m[2]![2]! - m[1]![2]! * m[2]![0]!) +
  m[0]![2]! * (m[1]![0]! * m[2]![1]! - m[1]![1]! * m[2]![0]!);

/** u = (a·x, b·sin(y/c), 0) in world mm: det J = (1 + a)(1 + (b/c)·cos(y/c)). */
const [a, b, c] = [0.1, 2, 6];
const analytic = (p: readonly number[]): Vec3 => [a * p[0]!, b * Math.sin(p[1]! / c), 0];

describe('jacobianDeterminant', () => {
  // Oblique and anisotropic, so world derivatives mix the voxel axes.
  const grid = obliqueGrid([18, 16, 9], 35, [1.5, 1.25, 2], [-10, -12, 4]);
  const u = fieldFrom(grid, 3, (p, ch) => analytic(p)[ch]!);
  const det = jacobianDeterminant(u);

  it('equals a direct finite-difference computation, central inside and one-sided at borders', () => {
    const [nx, ny, nz] = grid.dims;
    let worst = 0;
    for (let k = 0, q = 0; k < nz; k++)
      for (let j = 0; j < ny; j++)
        for (let i = 0; i < nx; i++, q++) {
          // J = I + Σ_axis (Δu / Δindex) ⊗ (∂index/∂x), Δ from the analytic u at neighbouring voxels.
          const idx = [i, j, k];
          const dudIdx = [0, 1, 2].map((axis) => {
            const lo = [...idx];
            const hi = [...idx];
            if (idx[axis]! > 0) lo[axis]! -= 1;
            if (idx[axis]! < grid.dims[axis]! - 1) hi[axis]! += 1;
            const ul = analytic(applyPoint(grid.affine, lo));
            const uh = analytic(applyPoint(grid.affine, hi));
            return [0, 1, 2].map((r) => (uh[r]! - ul[r]!) / (hi[axis]! - lo[axis]!));
          });
          // ∂index/∂x for a rotation R about z and spacings s: row axis = R column axis / s.
          const cs = Math.cos((35 * Math.PI) / 180);
          const sn = Math.sin((35 * Math.PI) / 180);
          const didx = [
            [cs / 1.5, sn / 1.5, 0],
            [-sn / 1.25, cs / 1.25, 0],
            [0, 0, 1 / 2],
          ];
          const J = [0, 1, 2].map((r) =>
            [0, 1, 2].map(
              (col) =>
                (r === col ? 1 : 0) + [0, 1, 2].reduce((s, ax) => s + dudIdx[ax]![r]! * didx[ax]![col]!, 0),
            ),
          );
          worst = Math.max(worst, Math.abs(det[q]! - det3(J)));
        }
    // u is stored as float32: differences carry ~1e-6 mm of rounding.
    expect(worst).toBeLessThan(1e-5);
  });

  it('approaches the closed form inside (second-order error of central differences)', () => {
    const [nx, ny, nz] = grid.dims;
    let worst = 0;
    for (let k = 1; k < nz - 1; k++)
      for (let j = 1; j < ny - 1; j++)
        for (let i = 1; i < nx - 1; i++) {
          const p = applyPoint(grid.affine, [i, j, k]);
          const exact = (1 + a) * (1 + (b / c) * Math.cos(p[1] / c));
          worst = Math.max(worst, Math.abs(det[i + nx * (j + ny * k)]! - exact));
        }
    // |error| ≤ (b/c)·h²/(6c²) per axis with h ≤ 1.5 mm: about 0.007.
    expect(worst).toBeLessThan(0.01);
  });

  it('is constant, without folding, for an affine displacement', () => {
    const m = [
      [0.2, 0.1, 0],
      [-0.05, -0.1, 0.02],
      [0, 0.03, 0.3],
    ];
    const affineU = fieldFrom(grid, 3, (p, r) => m[r]![0]! * p[0] + m[r]![1]! * p[1] + m[r]![2]! * p[2] + 5);
    const expected = det3(m.map((row, r) => row.map((v, col) => v + (r === col ? 1 : 0))));
    const s = jacobianStats(jacobianDeterminant(affineU));
    expect(s.minDet).toBeCloseTo(expected, 5);
    expect(s.maxDet).toBeCloseTo(expected, 5);
    expect(s.foldingFraction).toBe(0);
    expect(s.sdLogJ).toBeLessThan(1e-5);
    expect(learn2regSdLogJ(affineU)).toBeLessThan(1e-5);
  });

  it('finds the folding of u = (A·sin(x/c), 0, 0) with A/c = 2: det = 1 + 2cos(x/c) ≤ 0 on a third of a period', () => {
    // 0.5 mm voxels along x over 4 periods of 2π·5 mm.
    const g = obliqueGrid([Math.round((8 * Math.PI * 5) / 0.5), 4, 3], 0, [0.5, 2, 2], [0, 0, 0]);
    const fold = fieldFrom(g, 3, (p, r) => (r === 0 ? 10 * Math.sin(p[0] / 5) : 0));
    const d = jacobianDeterminant(fold);
    expect(foldingFraction(d)).toBeGreaterThan(0.31);
    expect(foldingFraction(d)).toBeLessThan(0.35);
    expect(jacobianStats(d).minDet).toBeLessThan(-0.9);
    // Folded voxels enter sdLogJ at log(1e-9): a large spread.
    expect(sdLogJ(d)).toBeGreaterThan(5);
  });

  it('restricts statistics to a mask', () => {
    const mask = new Uint8Array(voxelCount(grid));
    mask[5] = 1;
    mask[77] = 1;
    const s = jacobianStats(det, mask);
    expect(s.voxels).toBe(2);
    expect(s.meanDet).toBeCloseTo((det[5]! + det[77]!) / 2, 6);
  });
});

describe('learn2regSdLogJ', () => {
  it('is std(log(clip(det + 3))) over the grid without its 2-voxel border, as the L2R script', () => {
    const grid = obliqueGrid([12, 10, 8], 0, [2, 2, 2], [0, 0, 0]);
    const u = fieldFrom(grid, 3, (p, ch) => analytic(p)[ch]!);
    const det = jacobianDeterminant(u);
    const logs: number[] = [];
    for (let k = 2; k < 6; k++)
      for (let j = 2; j < 8; j++)
        for (let i = 2; i < 10; i++) logs.push(Math.log(det[i + 12 * (j + 10 * k)]! + 3));
    const mean = logs.reduce((s, v) => s + v, 0) / logs.length;
    const std = Math.sqrt(logs.reduce((s, v) => s + (v - mean) ** 2, 0) / logs.length);
    expect(learn2regSdLogJ(u)).toBeCloseTo(std, 10);
    // The +3 shrinks it against the plain definition.
    expect(learn2regSdLogJ(u)).toBeLessThan(0.5 * sdLogJ(det));
    expect(() =>
      learn2regSdLogJ(fieldFrom(obliqueGrid([4, 9, 9], 0, [1, 1, 1], [0, 0, 0]), 3, () => 0)),
    ).toThrow(/crops/);
  });
});
