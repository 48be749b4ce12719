import { describe, expect, it } from 'vitest';

import { voxelCount } from './field.js';
import { applyPoint, invert } from './grid.js';
import { invertDisplacement } from './inverse.js';
import { sampleAtPoints } from './resample.js';
import { obliqueGrid, smoothDisplacement } from './testing.js';

describe('invertDisplacement', () => {
  // 2 × 2 × 2.5 mm, oblique; up to ~3 mm displacements with gradients up to ~0.3.
  const grid = obliqueGrid([40, 36, 30], 20, [2, 2, 2.5], [-40, -36, -37]);
  const v = smoothDisplacement(grid, 3, 60, 8);
  const { field: w, iterations, lastChange } = invertDisplacement(v);
  const n = voxelCount(grid);
  const toVoxel = invert(grid.affine);
  /** Interior voxel centres (6 voxels from every face: beyond the largest displacement). */
  const interior: number[] = [];
  for (let k = 6; k < 24; k++)
    for (let j = 6; j < 30; j++)
      for (let i = 6; i < 34; i++) interior.push(...applyPoint(grid.affine, [i, j, k]));
  const count = interior.length / 3;

  /** Largest distance in voxels (of the coarsest spacing, 2.5 mm → conservative at 2 mm) between point sets. */
  const worstVoxels = (a: number[], b: number[]): number => {
    let worst = 0;
    for (let t = 0; t < a.length / 3; t++) {
      const pa = applyPoint(toVoxel, a.slice(3 * t, 3 * t + 3));
      const pb = applyPoint(toVoxel, b.slice(3 * t, 3 * t + 3));
      worst = Math.max(worst, Math.hypot(pa[0] - pb[0], pa[1] - pb[1], pa[2] - pb[2]));
    }
    return worst;
  };

  it('converges', () => {
    expect(iterations).toBeLessThan(50);
    expect(lastChange).toBeLessThanOrEqual(1e-3);
    expect(w.grid).toBe(grid);
    expect(w.data.length).toBe(3 * n);
  });

  it('undoes the forward map: x → x + v(x) → y + w(y) returns to x within 0.05 voxel', () => {
    const fv = sampleAtPoints(v, interior);
    const y = interior.map((p, q) => p + fv[(q % 3) * count + Math.floor(q / 3)]!);
    const fw = sampleAtPoints(w, y);
    const back = y.map((p, q) => p + fw[(q % 3) * count + Math.floor(q / 3)]!);
    const err = worstVoxels(back, interior);
    expect(err).toBeLessThan(0.05);
  });

  it('is undone by the forward map: y → y + w(y) → x + v(x) returns to y within 0.05 voxel', () => {
    const fw = sampleAtPoints(w, interior);
    const x = interior.map((p, q) => p + fw[(q % 3) * count + Math.floor(q / 3)]!);
    const fv = sampleAtPoints(v, x);
    const back = x.map((p, q) => p + fv[(q % 3) * count + Math.floor(q / 3)]!);
    expect(worstVoxels(back, interior)).toBeLessThan(0.01);
  });

  it('negates a constant displacement exactly', () => {
    const c = { grid, channels: 3, data: new Float32Array(3 * n) };
    c.data.fill(1.5, 0, n);
    c.data.fill(-0.5, n, 2 * n);
    const inv = invertDisplacement(c).field;
    expect(inv.data.subarray(0, n).every((x) => x === -1.5)).toBe(true);
    expect(inv.data.subarray(n, 2 * n).every((x) => x === 0.5)).toBe(true);
    expect(inv.data.subarray(2 * n).every((x) => x === 0)).toBe(true);
  });
});
