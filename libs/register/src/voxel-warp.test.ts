import { mulberry32 } from '@curia/tensors';
import { describe, expect, it } from 'vitest';

import type { Dims3 } from './optim-fields.js';
import { trilinear } from './optim-fields.js';
import { smoothRandomVolume } from './optim-testing.js';
import { obliqueGrid } from './testing.js';
import { OnnxWarp, warpVoxelsTs } from './voxel-warp.js';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Smooth data and a random displacement of up to ±`reach` voxels (well beyond the faces). */
function problem(dims: Dims3, channels: number, reach: number, seed: number) {
  const grid = obliqueGrid([...dims], 20, [1.5, 0.9, 2.5], [0, 0, 0]);
  const data = smoothRandomVolume(grid, channels, seed).data;
  const rnd = mulberry32(seed + 1);
  const displacement = Float32Array.from(
    { length: (3 * data.length) / channels },
    () => (rnd() * 2 - 1) * reach,
  );
  return { data, channels, dims, displacement };
}

describe('voxel warping', () => {
  it('the TypeScript reference is the clamped trilinear sampler, per channel, keeping the element type', () => {
    const p = problem([9, 8, 7], 3, 4, 1);
    const out = warpVoxelsTs(p);
    expect(out).toBeInstanceOf(Float32Array);
    const n = 9 * 8 * 7;
    for (const v of [0, 100, 311, n - 1]) {
      const [i, j, k] = [v % 9, Math.floor(v / 9) % 8, Math.floor(v / 72)];
      const u = [p.displacement[v]!, p.displacement[n + v]!, p.displacement[2 * n + v]!];
      for (let c = 0; c < 3; c++) {
        const want = trilinear(p.data, c * n, p.dims, i + u[0]!, j + u[1]!, k + u[2]!);
        expect(out[c * n + v]).toBeCloseTo(want, 6);
      }
    }
    const f64 = warpVoxelsTs({ ...p, data: Float64Array.from(p.data) });
    expect(f64).toBeInstanceOf(Float64Array);
    expect(maxAbsDiff(f64, out)).toBeLessThan(1e-6);
  });

  it('ONNX GridSample (opset 20, 5-D) matches the TypeScript sampler within 1e-4', async () => {
    const ort = new OnnxWarp({ executionProviders: ['cpu'], threads: 1 });
    try {
      for (const [dims, channels, reach] of [
        [[23, 17, 11], 4, 8],
        [[40, 33, 21], 12, 3],
        [[1, 6, 2], 2, 2],
      ] as const) {
        const p = problem(dims, channels, reach, dims[0]);
        const got = await ort.warp(p);
        expect(got).toBeInstanceOf(Float32Array);
        expect(maxAbsDiff(got, warpVoxelsTs(p))).toBeLessThan(1e-4);
        // Float64 in, Float64 out; zero displacement: the data itself.
        const still = await ort.warp({
          ...p,
          data: Float64Array.from(p.data),
          displacement: new Float64Array(p.displacement.length),
        });
        expect(still).toBeInstanceOf(Float64Array);
        expect(maxAbsDiff(still, p.data)).toBeLessThan(1e-5);
      }
      expect(ort.name).toBe('onnx:cpu');
      await expect(
        ort.warp({
          data: new Float32Array(8),
          channels: 1,
          dims: [2, 2, 2],
          displacement: new Float32Array(23),
        }),
      ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    } finally {
      await ort.close();
    }
  });
});
