import { describe, expect, it } from 'vitest';

import { computeGeometry } from '@curia/volume';

import type { Mat4 } from './field.js';
import {
  applyPoint,
  compose,
  gridSlab,
  gridSpacing,
  gridToWorld,
  IDENTITY,
  invert,
  lpsAffineOf,
  type Vec3,
  workingGrid,
  worldToVoxel,
} from './grid.js';
import { obliqueGrid } from './testing.js';

/** A rotation about z by `deg`, with spacings and a translation: an oblique voxel → world affine. */
const oblique = (deg: number, sp: Vec3, t: Vec3): Mat4 => obliqueGrid([1, 1, 1], deg, sp, t).affine;

describe('affine helpers', () => {
  it('inverts, composes (b first) and maps points', () => {
    const a = oblique(30, [0.7, 0.8, 2.5], [-100, 20, 7]);
    const b = [0, 1, 0, 5, 0, 0, -1, 3, 2, 0, 0, -4, 0, 0, 0, 1];
    const id = compose(a, invert(a));
    for (let i = 0; i < 16; i++) expect(id[i]).toBeCloseTo(IDENTITY[i]!, 12);
    const p = [1.5, -2, 3.25];
    const ab = applyPoint(compose(a, b), p);
    const seq = applyPoint(a, applyPoint(b, p));
    for (let r = 0; r < 3; r++) expect(ab[r]).toBeCloseTo(seq[r]!, 10);
    expect(() => invert([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])).toThrow(/singular/);
  });

  it('goes between voxels and world on a grid', () => {
    const g = { dims: [10, 10, 10] as [number, number, number], affine: oblique(-20, [1, 2, 3], [5, 6, 7]) };
    const w = gridToWorld(g, [2, 3, 4]);
    const v = worldToVoxel(g, w);
    expect(v[0]).toBeCloseTo(2, 12);
    expect(v[1]).toBeCloseTo(3, 12);
    expect(v[2]).toBeCloseTo(4, 12);
    const sp = gridSpacing(g);
    [1, 2, 3].forEach((s, i) => expect(sp[i]).toBeCloseTo(s, 12));
  });

  it('turns a NIfTI (RAS) affine into LPS and keeps a DICOM (LPS) one', () => {
    const ras = [3, 0, 0, -10, 0, 3, 0, 20, 0, 0, 3, 30, 0, 0, 0, 1];
    expect(lpsAffineOf({ inputAffine: ras, inputFrame: 'RAS' }).map((v) => v + 0)).toEqual([
      -3, 0, 0, 10, 0, -3, 0, -20, 0, 0, 3, 30, 0, 0, 0, 1,
    ]);
    expect(lpsAffineOf({ inputAffine: ras, inputFrame: 'LPS' })).toEqual(ras);
  });
});

describe('workingGrid', () => {
  it('is the fixed grid itself for a 3 mm volume at 3 mm (the shared CT: 122×101×30, RAS)', () => {
    const ras = [-3, 0, 0, 180, 0, 3, 0, -150, 0, 0, 3, -40, 0, 0, 0, 1];
    const g = computeGeometry([122, 101, 30], ras, 'RAS');
    const w = workingGrid(g);
    expect(w.dims).toEqual([122, 101, 30]);
    const lps = lpsAffineOf(g);
    for (let i = 0; i < 16; i++) expect(w.affine[i]).toBeCloseTo(lps[i]!, 12);
  });

  it('follows the fixed axes, starts at voxel (0,0,0) and covers the voxel-centre box', () => {
    const a = oblique(25, [0.75, 0.75, 2.5], [-120, -90, 300]);
    const fixed = computeGeometry([512, 400, 41], a, 'LPS');
    const w = workingGrid(fixed, 2);
    // Extents: 383.25, 299.25 and 100 mm → ⌈·/2⌉ + 1 nodes.
    expect(w.dims).toEqual([193, 151, 51]);
    expect(applyPoint(w.affine, [0, 0, 0])).toEqual(applyPoint(a, [0, 0, 0]));
    for (let axis = 0; axis < 3; axis++) {
      const fixedDir = [a[axis]!, a[4 + axis]!, a[8 + axis]!];
      const norm = Math.hypot(...fixedDir);
      for (let r = 0; r < 3; r++) expect(w.affine[4 * r + axis]).toBeCloseTo((2 * fixedDir[r]!) / norm, 12);
    }
    // The last node lies at or beyond the last fixed voxel centre, by less than one working voxel.
    const lastFixed = worldToVoxel(w, applyPoint(a, [511, 399, 40]));
    [193, 151, 51].forEach((n, axis) => {
      expect(n - 1 - lastFixed[axis]!).toBeGreaterThanOrEqual(-1e-9);
      expect(n - 1 - lastFixed[axis]!).toBeLessThan(1);
    });
    expect(() => workingGrid(fixed, 0)).toThrow(/positive/);
  });

  it('cuts slabs along k', () => {
    const g = { dims: [4, 5, 6] as [number, number, number], affine: oblique(10, [1, 1, 2], [0, 0, 0]) };
    const s = gridSlab(g, 2, 5);
    expect(s.dims).toEqual([4, 5, 3]);
    const p = applyPoint(s.affine, [1, 2, 0]);
    const q = applyPoint(g.affine, [1, 2, 2]);
    for (let r = 0; r < 3; r++) expect(p[r]).toBeCloseTo(q[r]!, 12);
    expect(() => gridSlab(g, 3, 7)).toThrow(/slab/);
  });
});
