import { describe, expect, it } from 'vitest';

import { sharedPathOrSkip } from '@curia/tensors';
import { computeGeometry, openVolume } from '@curia/volume';

import { voxelCount, type Mat4 } from './field.js';
import { applyPoint, gridSlab, IDENTITY, inputGrid, invert, workingGrid } from './grid.js';
import { resampleThroughField, sampleAtPoints, volumeField, volumeLabels } from './resample.js';
import { fieldFrom, obliqueGrid, smoothDisplacement } from './testing.js';
import { displacementOnGrid, inverseDisplacementOnGrid, warpImage, warpLabels } from './warp.js';

const CT = sharedPathOrSkip('data/totalsegmentator/example_ct_sm.nii.gz');
const SEG = sharedPathOrSkip('data/totalsegmentator/example_seg.nii.gz');

// A fixed input grid (1.5 mm, RAS NIfTI), its 3 mm working grid, a moving grid and an affine.
const FIXED = computeGeometry(
  [30, 26, 14],
  [-1.5, 0, 0, 20, 0, 1.5, 0, -18, 0, 0, 2, -10, 0, 0, 0, 1],
  'RAS',
);
const FIXED_GRID = inputGrid(FIXED);
const WORK = workingGrid(FIXED, 3);
const MOVING_GRID = obliqueGrid([24, 24, 16], 12, [2, 2, 2.5], [-30, -25, -22]);
const A: Mat4 = [0.98, 0.05, 0, 1.5, -0.04, 1.02, 0.01, -2, 0.01, 0, 0.97, 0.5, 0, 0, 0, 1];
const V = smoothDisplacement(WORK, 2, 25, 11);
const linear = (p: readonly number[]): number => 0.3 * p[0]! - 0.2 * p[1]! + 0.7 * p[2]! + 10;

describe('displacementOnGrid', () => {
  it('is A·x − x for an affine alone', () => {
    const u = displacementOnGrid(FIXED_GRID, A);
    const n = voxelCount(FIXED_GRID);
    for (const q of [0, 17, 999, n - 1]) {
      const [i, j, k] = [q % 30, Math.floor(q / 30) % 26, Math.floor(q / 780)];
      const x = applyPoint(FIXED_GRID.affine, [i, j, k]);
      const y = applyPoint(A, x);
      for (let c = 0; c < 3; c++) expect(u.data[c * n + q]).toBeCloseTo(y[c]! - x[c]!, 4);
    }
  });

  it('is A·(x + v(x)) − x with v interpolated from the working grid at fixed voxel centres', () => {
    const u = displacementOnGrid(FIXED_GRID, A, V);
    const n = voxelCount(FIXED_GRID);
    const centres: number[] = [];
    for (let k = 0; k < 14; k++)
      for (let j = 0; j < 26; j++)
        for (let i = 0; i < 30; i++) centres.push(...applyPoint(FIXED_GRID.affine, [i, j, k]));
    const v = sampleAtPoints(V, centres);
    for (let q = 0; q < n; q += 7) {
      const x = centres.slice(3 * q, 3 * q + 3);
      const y = applyPoint(
        A,
        [0, 1, 2].map((c) => x[c]! + v[c * n + q]!),
      );
      for (let c = 0; c < 3; c++) expect(u.data[c * n + q]).toBeCloseTo(y[c]! - x[c]!, 4);
    }
  });

  it('has an inverse on the fixed grid: y → x = y + u_inv(y) → T(x) returns to y', () => {
    // A large rotation (30° about z) with the field: the affine part is inverted exactly.
    const c = Math.cos(Math.PI / 6);
    const s = Math.sin(Math.PI / 6);
    const rot: Mat4 = [c, -s, 0, 4, s, c, 0, -3, 0, 0, 1, 2, 0, 0, 0, 1];
    const uInv = inverseDisplacementOnGrid(FIXED_GRID, rot, V);
    const n = voxelCount(FIXED_GRID);
    const xs: number[] = [];
    const ys: number[] = [];
    for (let k = 0; k < 14; k++)
      for (let j = 0; j < 26; j++)
        for (let i = 0; i < 30; i++) {
          const q = i + 30 * (j + 26 * k);
          const y = applyPoint(FIXED_GRID.affine, [i, j, k]);
          ys.push(...y);
          xs.push(...[0, 1, 2].map((r) => y[r]! + uInv.data[r * n + q]!));
        }
    // T(x) = rot·(x + v(x)), v interpolated (border extended) from the working grid.
    const toWork = invert(WORK.affine);
    let worst = 0;
    let checked = 0;
    const v = sampleAtPoints(V, xs);
    for (let q = 0; q < n; q++) {
      const x = xs.slice(3 * q, 3 * q + 3);
      // Only where x is well inside the working grid (the inverse is approximate at its border).
      const w = applyPoint(toWork, x);
      if (!w.every((c, a) => c >= 2 && c <= WORK.dims[a]! - 3)) continue;
      const t = applyPoint(
        rot,
        [0, 1, 2].map((r) => x[r]! + v[r * n + q]!),
      );
      worst = Math.max(worst, Math.hypot(t[0] - ys[3 * q]!, t[1] - ys[3 * q + 1]!, t[2] - ys[3 * q + 2]!));
      checked++;
    }
    expect(checked).toBeGreaterThan(50);
    // 0.05 voxel of the 1.5 mm fixed grid.
    expect(worst).toBeLessThan(0.075);
    // Without a field it is the inverse affine exactly.
    const affineOnly = inverseDisplacementOnGrid(FIXED_GRID, rot);
    const back = invert(rot);
    const y0 = applyPoint(FIXED_GRID.affine, [3, 4, 5]);
    const q0 = 3 + 30 * (4 + 26 * 5);
    const x0 = applyPoint(back, y0);
    for (let r = 0; r < 3; r++) expect(affineOnly.data[r * n + q0]).toBeCloseTo(x0[r]! - y0[r]!, 4);
  });

  it('computed slab by slab equals the whole', () => {
    const whole = displacementOnGrid(FIXED_GRID, A, V);
    const n = voxelCount(FIXED_GRID);
    const slab = displacementOnGrid(gridSlab(FIXED_GRID, 5, 9), A, V);
    const m = 30 * 26 * 4;
    let worst = 0;
    for (let c = 0; c < 3; c++)
      for (let q = 0; q < m; q++)
        worst = Math.max(worst, Math.abs(slab.data[c * m + q]! - whole.data[c * n + 5 * 780 + q]!));
    expect(worst).toBeLessThan(1e-4);
  });
});

describe('warpImage / warpLabels', () => {
  it('samples the moving image at T(x) = A·(x + v(x)): exact for a world-linear image', () => {
    const moving = fieldFrom(MOVING_GRID, 1, linear);
    const warped = warpImage(moving, FIXED_GRID, A, V, -1);
    const u = displacementOnGrid(FIXED_GRID, A, V);
    const n = voxelCount(FIXED_GRID);
    let checked = 0;
    for (let q = 0; q < n; q++) {
      if (warped.data[q] === -1) continue;
      const [i, j, k] = [q % 30, Math.floor(q / 30) % 26, Math.floor(q / 780)];
      const x = applyPoint(FIXED_GRID.affine, [i, j, k]);
      const y = [0, 1, 2].map((c) => x[c]! + u.data[c * n + q]!);
      // In the outer half voxel the border value is extended: not linear there.
      const c = applyPoint(invert(MOVING_GRID.affine), y);
      if (!c.every((v, a) => v >= 0 && v <= MOVING_GRID.dims[a]! - 1)) continue;
      expect(warped.data[q]).toBeCloseTo(linear(y), 3);
      checked++;
    }
    expect(checked).toBeGreaterThan(n / 2);
  });

  it('resampling through A then sampling at x + v is the same map (the composition rule)', () => {
    const moving = fieldFrom(MOVING_GRID, 1, linear);
    // M_A on the working grid, then sampled at x + v(x) on the fixed grid: M(A·(x + v(x))).
    const movingA = resampleThroughField(moving, WORK, A);
    const twoStep = resampleThroughField(movingA, FIXED_GRID, IDENTITY, V);
    const direct = warpImage(moving, FIXED_GRID, A, V);
    let close = 0;
    for (let q = 0; q < direct.data.length; q++)
      if (Math.abs(twoStep.data[q]! - direct.data[q]!) < 1e-3) close++;
    // Equal wherever both stay inside their grids (linear data: interpolation is exact).
    expect(close).toBeGreaterThan(0.7 * direct.data.length);
  });

  it('warps labels with nearest neighbour at T(x), keeping the label type', () => {
    const n = voxelCount(MOVING_GRID);
    const labels = { grid: MOVING_GRID, data: Uint16Array.from({ length: n }, (_, q) => 300 + (q % 997)) };
    const out = warpLabels(labels, FIXED_GRID, A, V, 7);
    expect(out.data).toBeInstanceOf(Uint16Array);
    const u = displacementOnGrid(FIXED_GRID, A, V);
    const nf = voxelCount(FIXED_GRID);
    const inv = invert(MOVING_GRID.affine);
    let mismatches = 0;
    for (let q = 0; q < nf; q++) {
      const [i, j, k] = [q % 30, Math.floor(q / 30) % 26, Math.floor(q / 780)];
      const x = applyPoint(FIXED_GRID.affine, [i, j, k]);
      const c = applyPoint(
        inv,
        [0, 1, 2].map((r) => x[r]! + u.data[r * nf + q]!),
      );
      const inside = c.every((v, a) => v >= -0.5 && v <= MOVING_GRID.dims[a]! - 0.5);
      const r = c.map((v, a) => Math.min(MOVING_GRID.dims[a]! - 1, Math.floor(v + 0.5)));
      const expected = inside ? labels.data[r[0]! + 24 * (r[1]! + 24 * r[2]!)] : 7;
      if (out.data[q] !== expected) mismatches++;
    }
    // u is float32 here: a position within ~1e-5 voxel of a rounding boundary may go either way.
    expect(mismatches).toBeLessThanOrEqual(2);
  });
});

describe('on the shared CT and its segmentation', () => {
  it.skipIf(!CT || !SEG)('warps a translated copy back onto the fixed grid exactly', async () => {
    const ct = await volumeField(await openVolume({ kind: 'path', path: CT! }));
    const seg = await volumeLabels(await openVolume({ kind: 'path', path: SEG! }));
    expect(ct.grid.dims).toEqual([122, 101, 30]);
    // The same voxels placed 12 mm to the patient's left and 6 mm up: A moves fixed positions there.
    const t = [12, 0, 6];
    const shifted = [...ct.grid.affine];
    [3, 7, 11].forEach((idx, r) => (shifted[idx]! += t[r]!));
    const A: Mat4 = [1, 0, 0, t[0]!, 0, 1, 0, t[1]!, 0, 0, 1, t[2]!, 0, 0, 0, 1];
    const image = warpImage({ ...ct, grid: { dims: ct.grid.dims, affine: shifted } }, ct.grid, A);
    const labels = warpLabels({ grid: { dims: seg.grid.dims, affine: shifted }, data: seg.data }, ct.grid, A);
    let worst = 0;
    for (let q = 0; q < ct.data.length; q++) worst = Math.max(worst, Math.abs(image.data[q]! - ct.data[q]!));
    expect(worst).toBeLessThan(1e-2);
    expect(labels.data).toEqual(seg.data);
  });
});
