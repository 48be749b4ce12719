import * as nifti from 'nifti-reader-js';
import { describe, expect, it } from 'vitest';

import { computeGeometry, flipWorldXY } from '@curia/volume';

import { readDisplacementNifti, writeDisplacementNifti } from './displacement-nifti.js';
import { voxelCount } from './field.js';
import { applyPoint, inputGrid, invert, workingGrid } from './grid.js';
import { obliqueGrid, smoothDisplacement } from './testing.js';
import { displacementOnGrid, warpLabels } from './warp.js';

// A fixed NIfTI grid (RAS, anisotropic), its working grid, a moving label map and a registration.
const FIXED = computeGeometry(
  [28, 24, 12],
  [-1.25, 0, 0, 30, 0, 1.5, 0, -20, 0, 0, 2.5, -12, 0, 0, 0, 1],
  'RAS',
);
const FIXED_GRID = inputGrid(FIXED);
const V = smoothDisplacement(workingGrid(FIXED, 3), 3, 30, 21);
const A = [0.99, 0.03, 0, 2.2, -0.02, 1.01, 0.01, -1.7, 0, 0.02, 0.98, 0.9, 0, 0, 0, 1];
const MOVING_GRID = obliqueGrid([26, 22, 14], 8, [1.4, 1.4, 2.2], [-22, -18, -16]);

describe('displacement NIfTI', () => {
  const u = displacementOnGrid(FIXED_GRID, A, V);

  it('round-trips: same grid (to float32 header precision) and identical vectors', async () => {
    for (const gzip of [true, false]) {
      const back = await readDisplacementNifti(writeDisplacementNifti(u, { gzip }));
      expect(back.grid.dims).toEqual(FIXED_GRID.dims);
      for (let i = 0; i < 16; i++) expect(back.grid.affine[i]).toBeCloseTo(FIXED_GRID.affine[i]!, 5);
      expect(back.channels).toBe(3);
      expect(back.data).toEqual(u.data);
    }
  });

  it('has the header ITK/ANTs expect, read by nifti-reader-js', () => {
    let buf = writeDisplacementNifti(u).slice().buffer;
    expect(nifti.isCompressed(buf)).toBe(true);
    buf = nifti.decompress(buf) as ArrayBuffer;
    const h = nifti.readHeader(buf) as nifti.NIFTI1;
    expect(h.dims.slice(0, 6)).toEqual([5, 28, 24, 12, 1, 3]);
    expect(h.intent_code).toBe(1007);
    expect(h.datatypeCode).toBe(16);
    expect(h.xyzt_units).toBe(2);
    expect([h.qform_code, h.sform_code]).toEqual([1, 1]);
    // The sform is the fixed NIfTI's own RAS affine.
    const ras = FIXED.inputAffine;
    h.affine.flat().forEach((v, i) => expect(v).toBeCloseTo(ras[i]!, 5));
  });

  it('applied by an independent reader (x_moving = x_fixed + u, LPS) warps labels exactly as warpLabels', () => {
    const n = voxelCount(MOVING_GRID);
    const labels = Uint8Array.from({ length: n }, (_, q) => (q * 7919) % 251);
    const expected = warpLabels({ grid: MOVING_GRID, data: labels }, FIXED_GRID, A, V, 0);

    const buf = nifti.decompress(writeDisplacementNifti(u).slice().buffer) as ArrayBuffer;
    const h = nifti.readHeader(buf);
    const field = new Float32Array(nifti.readImage(h, buf));
    const [nx, ny, nz] = h.dims.slice(1, 4) as [number, number, number];
    const nf = nx * ny * nz;
    const rasToVoxel = h.affine.flat();
    const movingFromWorld = invert(MOVING_GRID.affine);
    let decided = 0;
    let ambiguous = 0;
    for (let k = 0, q = 0; k < nz; k++)
      for (let j = 0; j < ny; j++)
        for (let i = 0; i < nx; i++, q++) {
          // Voxel centre in RAS from the header, to LPS; add the stored LPS vector; into moving voxels.
          const lps = applyPoint(flipWorldXY(rasToVoxel), [i, j, k]);
          const moved = [0, 1, 2].map((c) => lps[c]! + field[c * nf + q]!);
          const m = applyPoint(movingFromWorld, moved);
          // Within 1e-4 voxel of a rounding boundary, float32 header/vector rounding may decide either way.
          if (m.some((v) => Math.abs(v - Math.floor(v) - 0.5) < 1e-4)) {
            ambiguous++;
            continue;
          }
          const inside = m.every((v, a) => v >= -0.5 && v <= MOVING_GRID.dims[a]! - 0.5);
          const r = m.map((v) => Math.floor(v + 0.5));
          const value = inside ? labels[r[0]! + 26 * (r[1]! + 22 * r[2]!)]! : 0;
          expect(value).toBe(expected.data[q]);
          decided++;
        }
    expect(decided).toBeGreaterThan(0.99 * nf);
    expect(ambiguous).toBeLessThan(0.01 * nf);
  });

  it('refuses files that are not 3D vector displacement fields', async () => {
    const scalar = writeDisplacementNifti(u, { gzip: false }).slice();
    new DataView(scalar.buffer).setInt16(68, 0, true);
    await expect(readDisplacementNifti(scalar)).rejects.toThrow(/intent_code/);
    const twoComponents = writeDisplacementNifti(u, { gzip: false }).slice();
    new DataView(twoComponents.buffer).setInt16(50, 2, true);
    await expect(readDisplacementNifti(twoComponents)).rejects.toThrow(/dims \[X, Y, Z, 1, 3\]/);
    expect(() => writeDisplacementNifti({ ...u, channels: 1 })).toThrow(/3 channels/);
  });
});
