import { describe, expect, it } from 'vitest';

import { openVolume, writeNifti } from '@curia/volume';

import { voxelCount, type Grid } from './field.js';
import { applyPoint, compose, invert, type Vec3 } from './grid.js';
import {
  poolField,
  resampleLabels,
  resampleThroughField,
  resampleToGrid,
  sampleAtPoints,
  volumeField,
  volumeLabels,
} from './resample.js';
import { fieldFrom, obliqueGrid, smoothDisplacement } from './testing.js';

/** A world-linear function (trilinear interpolation reproduces it exactly). */
const linear = (p: readonly number[]): number => 0.5 * p[0]! - 0.25 * p[1]! + 0.125 * p[2]! + 3;

const SRC = obliqueGrid([20, 18, 12], 15, [2, 2.5, 3], [-20, -25, -10]);
const TARGET = obliqueGrid([16, 14, 10], -10, [2.2, 2.2, 2.8], [-15, -18, -5]);
const A = [1, 0.05, 0, 2.5, -0.04, 1, 0.02, -1.5, 0, 0.03, 0.98, 1, 0, 0, 0, 1];

/** True when world point p lies within the half-voxel footprint of `g`. */
function inside(g: Grid, p: readonly number[]): boolean {
  const v = applyPoint(invert(g.affine), p);
  return v.every((c, a) => c >= -0.5 && c <= g.dims[a]! - 0.5);
}

/** True when world point p is at least `margin` voxels inside the voxel-centre box of `g`. */
function wellInside(g: Grid, p: readonly number[], margin = 1e-6): boolean {
  const v = applyPoint(invert(g.affine), p);
  return v.every((c, a) => c >= margin && c <= g.dims[a]! - 1 - margin);
}

describe('resampleThroughField', () => {
  const src = fieldFrom(SRC, 2, (p, c) => (c === 0 ? linear(p) : -2 * linear(p)));

  it('samples a world-linear image exactly at T(x) = A·x, fills outside and marks validity', () => {
    const valid = new Uint8Array(voxelCount(TARGET));
    const out = resampleThroughField(src, TARGET, A, undefined, -7, valid);
    const n = voxelCount(TARGET);
    let inCount = 0;
    let checked = 0;
    for (let k = 0, q = 0; k < 10; k++)
      for (let j = 0; j < 14; j++)
        for (let i = 0; i < 16; i++, q++) {
          const y = applyPoint(A, applyPoint(TARGET.affine, [i, j, k]));
          expect(valid[q]).toBe(inside(SRC, y) ? 1 : 0);
          if (!inside(SRC, y)) {
            expect(out.data[q]).toBe(-7);
            expect(out.data[n + q]).toBe(-7);
            continue;
          }
          inCount++;
          if (!wellInside(SRC, y)) continue;
          checked++;
          expect(out.data[q]).toBeCloseTo(linear(y), 4);
          expect(out.data[n + q]).toBeCloseTo(-2 * linear(y), 4);
        }
    expect(inCount).toBeGreaterThan(n / 4);
    expect(checked).toBeGreaterThan(n / 4);
    expect(inCount).toBeLessThan(n);
  });

  it('adds a displacement given on the target grid or on another grid (interpolated)', () => {
    // v(x) linear in x: trilinear interpolation from a coarser grid that covers the target is exact.
    const vOf = (p: readonly number[], c: number): number =>
      [0.03 * p[1]! + 1, -0.02 * p[0]! - 0.5, 0.01 * p[2]! + 0.7][c]!;
    const onTarget = fieldFrom(TARGET, 3, vOf);
    const coarse = obliqueGrid([14, 14, 10], 5, [4, 4, 4], [-40, -40, -20]);
    const onCoarse = fieldFrom(coarse, 3, vOf);
    // Axes parallel to the target's: the row-line fast path.
    const aligned = obliqueGrid([12, 11, 9], -10, [3, 3.5, 4], [-25, -30, -15]);
    const onAligned = fieldFrom(aligned, 3, vOf);
    const a = resampleThroughField(src, TARGET, A, onTarget, 0);
    const b = resampleThroughField(src, TARGET, A, onCoarse, 0);
    const c = resampleThroughField(src, TARGET, A, onAligned, 0);
    let checked = 0;
    for (let k = 0, q = 0; k < 10; k++)
      for (let j = 0; j < 14; j++)
        for (let i = 0; i < 16; i++, q++) {
          const x = applyPoint(TARGET.affine, [i, j, k]);
          const y = applyPoint(
            A,
            [0, 1, 2].map((c) => x[c]! + vOf(x, c)),
          );
          if (!wellInside(SRC, y) || !wellInside(coarse, x) || !wellInside(aligned, x)) continue;
          checked++;
          expect(a.data[q]).toBeCloseTo(linear(y), 4);
          expect(b.data[q]).toBeCloseTo(linear(y), 4);
          expect(c.data[q]).toBeCloseTo(linear(y), 4);
        }
    expect(checked).toBeGreaterThan(200);
  });

  it('interpolates an axis-aligned field by rows exactly as the general path, border extension included', () => {
    // A field grid smaller than the target, parallel to it; and the same grid turned by 1e-7 rad.
    const g = obliqueGrid([7, 6, 5], -10, [3, 3.5, 4], [-10, -12, -2]);
    const turned = {
      dims: g.dims,
      affine: compose(obliqueGrid([1, 1, 1], 1e-7 * (180 / Math.PI), [1, 1, 1], [0, 0, 0]).affine, g.affine),
    };
    const v = smoothDisplacement(g, 3, 12, 4);
    const fast = resampleThroughField(src, TARGET, A, v, -1);
    const general = resampleThroughField(src, TARGET, A, { ...v, grid: turned }, -1);
    let worst = 0;
    for (let q = 0; q < fast.data.length; q++)
      worst = Math.max(worst, Math.abs(fast.data[q]! - general.data[q]!));
    expect(worst).toBeLessThan(1e-3);
  });

  it('agrees with the point-function form and with sampling at world points', () => {
    const viaMat = resampleToGrid(src, TARGET, A, 1);
    const viaFn = resampleToGrid(src, TARGET, (p: Vec3) => applyPoint(A, p), 1);
    expect(viaFn.data).toEqual(viaMat.data);
    const pts: number[] = [];
    for (let k = 0; k < 10; k++)
      for (let j = 0; j < 14; j++)
        for (let i = 0; i < 16; i++) pts.push(...applyPoint(compose(A, TARGET.affine), [i, j, k]));
    expect(sampleAtPoints(src, pts, 1)).toEqual(viaMat.data);
  });

  it('is the identity on the source grid itself, and keeps every value', () => {
    const out = resampleToGrid(src, SRC);
    expect(out.data).toEqual(src.data);
  });

  it('refuses a displacement without 3 channels and data of the wrong size', () => {
    expect(() =>
      resampleThroughField(
        src,
        TARGET,
        A,
        fieldFrom(TARGET, 2, () => 0),
      ),
    ).toThrow(/3 channels/);
    expect(() => resampleToGrid({ ...src, data: new Float32Array(5) }, TARGET)).toThrow(/holds 5 values/);
  });
});

describe('resampleLabels', () => {
  it('moves labels by whole voxels exactly, keeps U8/U16 and fills outside', () => {
    const g: Grid = obliqueGrid([8, 7, 6], 30, [1, 1.5, 2], [3, 4, 5]);
    const n = voxelCount(g);
    for (const data of [
      Uint8Array.from({ length: n }, (_, i) => i % 251),
      Uint16Array.from({ length: n }, (_, i) => 1000 + i),
    ]) {
      // T(x) = x + 2·(voxel axis i) + 1·(voxel axis k): the label at (i, j, k) comes from (i + 2, j, k + 1).
      const shift = [0, 1, 2].map((r) => 2 * g.affine[4 * r]! + g.affine[4 * r + 2]!);
      const A = [1, 0, 0, shift[0]!, 0, 1, 0, shift[1]!, 0, 0, 1, shift[2]!, 0, 0, 0, 1];
      const out = resampleLabels({ grid: g, data }, g, A, undefined, 99);
      expect(out.data.constructor).toBe(data.constructor);
      for (let k = 0, q = 0; k < 6; k++)
        for (let j = 0; j < 7; j++)
          for (let i = 0; i < 8; i++, q++) {
            const expected = i + 2 < 8 && k + 1 < 6 ? data[i + 2 + 8 * (j + 7 * (k + 1))] : 99;
            expect(out.data[q]).toBe(expected);
          }
    }
  });
});

describe('poolField', () => {
  it('averages factor³ blocks (partial at the end) and centres the coarse voxels', () => {
    const g = obliqueGrid([5, 4, 4], 0, [1, 1, 1], [10, 20, 30]);
    const f = fieldFrom(g, 1, (p) => p[0]);
    const pooled = poolField(f, 2);
    expect(pooled.grid.dims).toEqual([3, 2, 2]);
    // Blocks along x: {0,1} → 10.5, {2,3} → 12.5, {4} → 14.
    expect(Array.from(pooled.data.subarray(0, 3))).toEqual([10.5, 12.5, 14]);
    expect(applyPoint(pooled.grid.affine, [0, 0, 0])).toEqual([10.5, 20.5, 30.5]);
    expect(applyPoint(pooled.grid.affine, [1, 0, 0])).toEqual([12.5, 20.5, 30.5]);
  });
});

describe('volumeField / volumeLabels', () => {
  // A permuted, flipped NIfTI: canonical axes differ from the stored ones.
  const dims = [5, 4, 3];
  const affine = [0, 0, 2, -3, -1.5, 0, 0, 4, 0, 3, 0, -6, 0, 0, 0, 1];
  const n = 60;

  it('reads every voxel in stored (input) order with the LPS affine', async () => {
    const values = Int16Array.from({ length: n }, (_, i) => i * 7 - 100);
    const bytes = writeNifti({
      dims,
      datatypeCode: 4,
      bitpix: 16,
      voxelBytes: new Uint8Array(values.buffer),
      affine,
      sclSlope: 0.5,
      sclInter: 1,
    });
    const f = await volumeField(await openVolume({ kind: 'bytes', data: bytes }));
    expect(f.grid.dims).toEqual(dims);
    expect(f.grid.affine.map((v) => v + 0)).toEqual([0, 0, -2, 3, 1.5, 0, 0, -4, 0, 3, 0, -6, 0, 0, 0, 1]);
    expect(Array.from(f.data)).toEqual(Array.from(values, (v) => v * 0.5 + 1));
  });

  it('reads label maps as U8 or U16 and refuses non-integer labels', async () => {
    const u8 = Uint8Array.from({ length: n }, (_, i) => i);
    const l8 = await volumeLabels(
      await openVolume({
        kind: 'bytes',
        data: writeNifti({ dims, datatypeCode: 2, bitpix: 8, voxelBytes: u8, affine }),
      }),
    );
    expect(l8.data).toEqual(u8);
    const u16 = Uint16Array.from({ length: n }, (_, i) => 300 * i);
    const l16 = await volumeLabels(
      await openVolume({
        kind: 'bytes',
        data: writeNifti({
          dims,
          datatypeCode: 512,
          bitpix: 16,
          voxelBytes: new Uint8Array(u16.buffer),
          affine,
        }),
      }),
    );
    expect(l16.data).toEqual(u16);
    const f32 = Float32Array.from({ length: n }, (_, i) => i + 0.5);
    const bad = await openVolume({
      kind: 'bytes',
      data: writeNifti({
        dims,
        datatypeCode: 16,
        bitpix: 32,
        voxelBytes: new Uint8Array(f32.buffer),
        affine,
      }),
    });
    await expect(volumeLabels(bad)).rejects.toThrow(/not an integer label/);
  });
});
