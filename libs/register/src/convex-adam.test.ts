import { describe, expect, it } from 'vitest';

import { convexAdam, coupledConvex, inverseConsistentPair } from './convex-adam.js';
import { costVolumeTs, OnnxCostVolume } from './cost-volume.js';
import type { GridField } from './field.js';
import { IDENTITY } from './grid.js';
import { jacobianDeterminant, jacobianStats } from './jacobian.js';
import { meanEndpointError } from './labels.js';
import { randomSmoothDisplacement, smoothRandomVolume } from './optim-testing.js';
import { resampleToGrid } from './resample.js';
import { obliqueGrid } from './testing.js';
import { warpImage } from './warp.js';

const grid = obliqueGrid([48, 40, 32], 0, [3, 3, 3], [-72, -60, -48]);
const n = 48 * 40 * 32;
const moving = smoothRandomVolume(grid, 4, 21);

/** Voxels inside the textured body and 3 voxels clear of the faces (where the features say where). */
const evalMask = (() => {
  const m = new Uint8Array(n);
  for (let k = 3, d = grid.dims; k < d[2] - 3; k++) {
    for (let j = 3; j < d[1] - 3; j++) {
      for (let i = 3; i < d[0] - 3; i++) {
        const v = i + d[0] * (j + d[1] * k);
        if (Math.abs(moving.data[v]!) > 0.05) m[v] = 1;
      }
    }
  }
  return m;
})();

/** Fixed = moving pulled back through the known field u: fixed(x) = moving(x + u(x)). */
function warped(u: GridField): GridField {
  return warpImage(moving, grid, IDENTITY, u);
}

const zero: GridField = { grid, channels: 3, data: new Float32Array(3 * n) };

describe('convexAdam', () => {
  it('recovers a known smooth deformation (EPE well below a voxel, no folding)', async () => {
    const truth = randomSmoothDisplacement(grid, 5, { bumps: 5, amplitudeMm: 12, sigmaMm: 18 });
    const fixed = warped(truth);
    const progress: string[] = [];
    const v = await convexAdam(fixed, moving, {
      onProgress: (stage, done, total) => {
        if (done === total) progress.push(stage);
      },
    });
    const before = meanEndpointError(truth, zero, evalMask);
    const epe = meanEndpointError(truth, v, evalMask);
    const jac = jacobianStats(jacobianDeterminant(v));
    console.log(
      `deformable: EPE ${epe.toFixed(3)} mm (before ${before.toFixed(3)} mm), min det ${jac.minDet.toFixed(3)}, SDlogJ ${jac.sdLogJ.toFixed(3)}`,
    );
    expect(before).toBeGreaterThan(2);
    expect(epe).toBeLessThan(1.5); // half a voxel
    expect(epe).toBeLessThan(0.5 * before);
    expect(jac.foldingFraction).toBe(0);
    expect(jac.minDet).toBeGreaterThan(0);
    expect(progress).toEqual(['cost-volume', 'convex', 'adam']);
    expect(v.channels).toBe(3);
    expect(v.grid).toBe(grid);
  });

  it('answers a near-zero field for an identity pair', async () => {
    const v = await convexAdam(moving, moving);
    let max = 0;
    for (const x of v.data) max = Math.max(max, Math.abs(x));
    expect(max).toBeLessThan(0.3); // mm: a tenth of a voxel
    expect(meanEndpointError(v, zero)).toBeLessThan(0.05);
  });

  it('inverse consistency and the ONNX cost volume give the same quality', async () => {
    const truth = randomSmoothDisplacement(grid, 6, { bumps: 4, amplitudeMm: 5, sigmaMm: 20 });
    const fixed = warped(truth);
    const backend = new OnnxCostVolume({ executionProviders: ['cpu'], threads: 1 });
    try {
      const v = await convexAdam(fixed, moving, {
        inverseConsistent: true,
        costVolume: backend,
        iterations: 30,
      });
      expect(backend.name).toBe('onnx:cpu');
      expect(meanEndpointError(truth, v, evalMask)).toBeLessThan(1);
      expect(jacobianStats(jacobianDeterminant(v)).foldingFraction).toBe(0);
    } finally {
      await backend.close();
    }
  });

  it('validates its inputs and stops with CANCELLED when the signal fires', async () => {
    const other = { ...moving, grid: obliqueGrid([48, 40, 32], 0, [2, 2, 2], [0, 0, 0]) };
    await expect(convexAdam(moving, other)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(convexAdam(moving, moving, { searchRadius: 9 })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await expect(convexAdam(moving, { ...moving, data: moving.data.subarray(1) })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    const ac = new AbortController();
    const run = convexAdam(moving, moving, {
      signal: ac.signal,
      onProgress: (stage, done) => {
        if (stage === 'adam' && done === 3) ac.abort();
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'CANCELLED' });
    const pre = new AbortController();
    pre.abort();
    await expect(convexAdam(moving, moving, { signal: pre.signal })).rejects.toMatchObject({
      code: 'CANCELLED',
    });
  });
});

describe('coupled convex optimisation', () => {
  it('recovers a uniform sub-voxel shift at the cost level', async () => {
    // fixed(x) = moving(x + (1.4, −0.6, 0.5)) in cost-level voxels (6 mm).
    const small = obliqueGrid([24, 20, 16], 0, [6, 6, 6], [0, 0, 0]);
    const m = smoothRandomVolume(small, 3, 3, 1, 2);
    const nn = 24 * 20 * 16;
    const shift = [1.4, -0.6, 0.5];
    const f = resampleToGrid(m, small, [
      1,
      0,
      0,
      6 * shift[0]!,
      0,
      1,
      0,
      6 * shift[1]!,
      0,
      0,
      1,
      6 * shift[2]!,
      0,
      0,
      0,
      1,
    ]);
    const cost = costVolumeTs({
      fixed: f.data,
      moving: m.data,
      channels: 3,
      dims: small.dims,
      radius: 3,
      smoothing: 1,
    });
    const u = await coupledConvex(cost, small.dims, 3, [0.003, 0.01, 0.03, 0.1, 0.3, 1], 1);
    const centre = 12 + 24 * (10 + 20 * 8);
    expect(u[centre]!).toBeCloseTo(1.4, 0);
    expect(u[nn + centre]!).toBeCloseTo(-0.6, 0);
    expect(u[2 * nn + centre]!).toBeCloseTo(0.5, 0);
  });

  it('inverse-consistency averaging makes opposite uniform shifts exact inverses', async () => {
    const dims = [10, 9, 8] as const;
    const nn = 10 * 9 * 8;
    const f = new Float64Array(3 * nn).fill(1.2, 0, nn);
    const b = new Float64Array(3 * nn).fill(-0.8, 0, nn);
    const u = await inverseConsistentPair(f, b, dims, 15);
    expect(u[nn / 2]!).toBeCloseTo(1, 6);
  });
});
