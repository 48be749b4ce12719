import { describe, expect, it } from 'vitest';

import { voxelCount, type GridField, type LabelField, type Mat4 } from './field.js';
import { applyPoint, IDENTITY } from './grid.js';
import { foldingFraction, jacobianDeterminant } from './jacobian.js';
import { meanEndpointError } from './labels.js';
import { m3Det, m3Mul, m3Of, m3Transpose, mat4From, rotationXYZ } from './optim-math.js';
import { randomSmoothDisplacement, smoothRandomVolume } from './optim-testing.js';
import { registerVolumes, unitVarianceFactor } from './register-volumes.js';
import { resampleThroughField, resampleToGrid } from './resample.js';
import { obliqueGrid } from './testing.js';
import { displacementOnGrid } from './warp.js';

const deg = Math.PI / 180;
// 3 mm voxels (the default working spacing), a slightly oblique grid as scanners write them.
const grid = obliqueGrid([44, 40, 32], 4, [3, 3, 3], [-66, -60, -48]);
const centre = applyPoint(grid.affine, [21.5, 19.5, 15.5]);

/** A CT-like image: air outside a body, soft-tissue texture inside (HU). */
function ctLike(seed: number): GridField {
  const v = smoothRandomVolume(grid, 1, seed);
  return { ...v, data: v.data.map((x) => -1000 + 1400 * x) };
}

/** x ↦ c + A(x − c) + t about the grid centre. */
function about(a: readonly number[], t: readonly number[]): number[] {
  const ac = [0, 1, 2].map(
    (r) => a[3 * r]! * centre[0] + a[3 * r + 1]! * centre[1] + a[3 * r + 2]! * centre[2],
  );
  return mat4From(
    a,
    [0, 1, 2].map((r) => centre[r]! - ac[r]! + t[r]!),
  );
}

/** Voxels well inside the body (where the image has texture), as a mask for end-point errors. */
function interior(): Uint8Array {
  const [nx, ny, nz] = grid.dims;
  const m = new Uint8Array(voxelCount(grid));
  for (let k = 0, q = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, q++) {
        const r = ((i - 21.5) / 14) ** 2 + ((j - 19.5) / 13) ** 2 + ((k - 15.5) / 10) ** 2;
        m[q] = r < 1 ? 1 : 0;
      }
  return m;
}

/** Mean end-point error (mm) between two fixed → moving maps inside the body. */
function epe(a: Mat4, av: GridField | undefined, b: Mat4, bv?: GridField): number {
  return meanEndpointError(displacementOnGrid(grid, a, av), displacementOnGrid(grid, b, bv), interior());
}

describe('registerVolumes', () => {
  it('finds (nearly) nothing to do for an image against itself', async () => {
    const img = ctLike(3);
    const r = await registerVolumes({ image: img, modality: 'ct' }, { image: img, modality: 'ct' });
    expect(r.displacement).toBeDefined();
    expect(epe(r.affine, r.displacement, IDENTITY)).toBeLessThan(0.5);
    const det = jacobianDeterminant(displacementOnGrid(grid, r.affine, r.displacement));
    expect(foldingFraction(det)).toBe(0);
    expect(Math.min(...det)).toBeGreaterThan(0.8);
    expect(Math.max(...det)).toBeLessThan(1.25);
    expect(r.timings.map((t) => t.stage)).toEqual(['features', 'affine', 'deformable']);
    expect(r.channels).toBe(12);
  });

  it('recovers an affine and a smooth warp together (fixed(x) = moving(A(x + d(x))))', async () => {
    const moving = ctLike(5);
    const truthA = about(
      m3Mul(rotationXYZ(2 * deg, -3 * deg, 5 * deg), [1.03, 0.01, 0, 0, 0.98, 0, 0, 0, 1.02]),
      [4, -5, 3],
    );
    const truthD = randomSmoothDisplacement(grid, 7, { bumps: 6, amplitudeMm: 5, sigmaMm: 18 });
    const fixed = resampleThroughField(moving, grid, truthA, truthD, -1000);
    const before = epe(IDENTITY, undefined, truthA, truthD);
    const r = await registerVolumes({ image: fixed, modality: 'ct' }, { image: moving, modality: 'ct' });
    const after = epe(r.affine, r.displacement, truthA, truthD);
    const affineOnly = epe(r.affine, undefined, truthA, truthD);
    expect(before).toBeGreaterThan(6);
    // Well under a voxel (3 mm), and the deformable stage improves on the affine.
    expect(after).toBeLessThan(1);
    expect(after).toBeLessThan(affineOnly);
  });

  it('keeps a rigid registration rigid and finds a known rotation + translation', async () => {
    const moving = ctLike(9);
    const truth = about(rotationXYZ(-4 * deg, 3 * deg, 7 * deg), [-6, 4, 2]);
    const fixed = resampleToGrid(moving, grid, truth, -1000);
    const r = await registerVolumes(
      { image: fixed, modality: 'ct' },
      { image: moving, modality: 'ct' },
      { transform: 'rigid' },
    );
    expect(r.displacement).toBeUndefined();
    const m = m3Of(r.affine);
    const mtm = m3Mul(m3Transpose(m), m);
    for (let i = 0; i < 9; i++) expect(Math.abs(mtm[i]! - (i % 4 === 0 ? 1 : 0))).toBeLessThan(1e-6);
    expect(m3Det(m)).toBeCloseTo(1, 6);
    expect(epe(r.affine, undefined, truth)).toBeLessThan(1);
    expect(r.timings.map((t) => t.stage)).toEqual(['features', 'rigid']);
  });

  it('registers Curia-like token features on their own coarser grid, alone and with MIND', async () => {
    const moving = ctLike(13);
    const truth = about(rotationXYZ(0, 0, 4 * deg), [5, -3, 2]);
    const fixed = resampleToGrid(moving, grid, truth, -1000);
    // "Tokens": 6 smooth channels of the same anatomy on a 2× coarser grid (as a 16-pixel patch grid is).
    const tokenGrid = { dims: [22, 20, 32] as [number, number, number], affine: m3Scaled(grid.affine) };
    const texture = smoothRandomVolume(grid, 6, 21);
    const movingTokens = resampleToGrid(texture, tokenGrid, IDENTITY, 0);
    const fixedTokens = resampleToGrid(resampleToGrid(texture, grid, truth, 0), tokenGrid, IDENTITY, 0);
    for (const features of ['curia', 'hybrid'] as const) {
      const r = await registerVolumes(
        { image: fixed, modality: 'ct', tokens: fixedTokens },
        { image: moving, modality: 'ct', tokens: movingTokens },
        { transform: 'affine', features },
      );
      expect(r.channels).toBe(features === 'curia' ? 6 : 18);
      expect(epe(r.affine, undefined, truth)).toBeLessThan(1.5);
    }
    await expect(
      registerVolumes(
        { image: fixed, modality: 'ct' },
        { image: moving, modality: 'ct' },
        { features: 'curia' },
      ),
    ).rejects.toMatchObject({ code: 'INTERNAL' });
  });

  it('refuses a mask with nothing inside, and stops with CANCELLED when its signal fires', async () => {
    const img = ctLike(3);
    const empty: LabelField = { grid, data: new Uint8Array(voxelCount(grid)) };
    await expect(
      registerVolumes({ image: img, modality: 'ct' }, { image: img, modality: 'ct' }, { fixedMask: empty }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /fixed mask has no voxel/ });
    const ac = new AbortController();
    const stages: string[] = [];
    const p = registerVolumes(
      { image: img, modality: 'ct' },
      { image: img, modality: 'ct' },
      {
        signal: ac.signal,
        onProgress: (s) => {
          stages.push(s);
          ac.abort();
        },
      },
    );
    await expect(p).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(stages.length).toBeGreaterThan(0);
  });

  it('refuses volumes that do not overlap in world space with FAILED_PRECONDITION', async () => {
    const img = ctLike(3);
    const far = { ...img, grid: { ...grid, affine: grid.affine.map((v, i) => (i === 3 ? v + 500 : v)) } };
    await expect(
      registerVolumes({ image: img, modality: 'ct' }, { image: far, modality: 'ct' }),
    ).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: /barely overlap in world space \(0\.00%/,
    });
  });

  it('a mask restricts the similarity to the voxels inside it', async () => {
    // Fixed and moving agree only in the left half (the right half of the moving image is another
    // texture); with the left half as the mask the registration still finds the true shift.
    const moving = ctLike(17);
    const other = ctLike(18);
    const truth = about([1, 0, 0, 0, 1, 0, 0, 0, 1], [4, 0, 0]);
    const fixed = resampleToGrid(moving, grid, truth, -1000);
    const [nx, ny, nz] = grid.dims;
    const mask = new Uint8Array(voxelCount(grid));
    for (let k = 0, q = 0; k < nz; k++)
      for (let j = 0; j < ny; j++)
        for (let i = 0; i < nx; i++, q++) {
          if (i < nx / 2) mask[q] = 1;
          else fixed.data[q] = other.data[q]!;
        }
    const r = await registerVolumes(
      { image: fixed, modality: 'ct' },
      { image: moving, modality: 'ct' },
      { transform: 'affine', fixedMask: { grid, data: mask } },
    );
    const t = applyPoint(r.affine, centre);
    const want = applyPoint(truth, centre);
    expect(Math.hypot(t[0] - want[0], t[1] - want[1], t[2] - want[2])).toBeLessThan(2);
  });
});

describe('unitVarianceFactor', () => {
  it('scales a block to total variance 1 and leaves a constant block alone', () => {
    const f: GridField = { grid, channels: 2, data: new Float32Array(2 * voxelCount(grid)) };
    expect(unitVarianceFactor(f)).toBe(1);
    const n = voxelCount(grid);
    for (let q = 0; q < n; q++) {
      f.data[q] = q % 2 ? 2 : -2; // variance 4
      f.data[n + q] = 0;
    }
    expect(unitVarianceFactor(f)).toBeCloseTo(0.5, 6);
  });
});

/** The grid's affine with in-plane voxels twice as large (same origin corner, voxel centres shifted). */
function m3Scaled(a: Mat4): number[] {
  const out = [...a];
  for (const r of [0, 1, 2]) {
    out[4 * r] = a[4 * r]! * 2;
    out[4 * r + 1] = a[4 * r + 1]! * 2;
    out[4 * r + 3] = a[4 * r + 3]! + 0.5 * (a[4 * r]! + a[4 * r + 1]!);
  }
  return out;
}
