import { mulberry32 } from '@curia/tensors';
import { describe, expect, it } from 'vitest';

import { costVolumeTs, OnnxCostVolume, windowDisplacement, windowSize } from './cost-volume.js';

function randomFeatures(channels: number, n: number, seed: number): Float32Array {
  const rnd = mulberry32(seed);
  return Float32Array.from({ length: channels * n }, () => rnd() * 2 - 1);
}

describe('SSD cost volume', () => {
  const dims = [7, 6, 5] as const;
  const n = 7 * 6 * 5;
  const channels = 3;
  const fixed = randomFeatures(channels, n, 1);
  const moving = randomFeatures(channels, n, 2);

  it('TypeScript reference: mean squared feature difference at the clamped shifted voxel', () => {
    const r = 2;
    const cost = costVolumeTs({ fixed, moving, channels, dims, radius: r, smoothing: 0 });
    expect(cost.length).toBe(windowSize(r) * n);
    const clamp = (v: number, hi: number): number => Math.min(hi - 1, Math.max(0, v));
    for (const k of [0, 17, 62, windowSize(r) - 1]) {
      const [dx, dy, dz] = windowDisplacement(k, r);
      for (const [i, j, kk] of [
        [0, 0, 0],
        [3, 2, 1],
        [6, 5, 4],
      ] as const) {
        const v = i + 7 * (j + 6 * kk);
        const m = clamp(i + dx, 7) + 7 * (clamp(j + dy, 6) + 6 * clamp(kk + dz, 5));
        let s = 0;
        for (let c = 0; c < channels; c++) s += (fixed[c * n + v]! - moving[c * n + m]!) ** 2;
        expect(cost[k * n + v]).toBeCloseTo(s / channels, 5);
      }
    }
  });

  it('zero displacement of identical features costs nothing', () => {
    const cost = costVolumeTs({ fixed, moving: fixed, channels, dims, radius: 1, smoothing: 1 });
    const k0 = (windowSize(1) - 1) / 2;
    expect(windowDisplacement(k0, 1)).toEqual([0, 0, 0]);
    expect(Math.max(...cost.subarray(k0 * n, (k0 + 1) * n))).toBe(0);
  });

  for (const smoothing of [0, 2]) {
    it(`ONNX graph matches the TypeScript reference (smoothing ${smoothing})`, async () => {
      const backend = new OnnxCostVolume({ executionProviders: ['cpu'], threads: 1 });
      try {
        for (const r of [0, 1, 3]) {
          const input = { fixed, moving, channels, dims, radius: r, smoothing };
          const want = costVolumeTs(input);
          const got = await backend.compute(input);
          expect(got.length).toBe(want.length);
          let max = 0;
          for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(got[i]! - want[i]!));
          expect(max).toBeLessThan(1e-5);
        }
        expect(backend.name).toBe('onnx:cpu');
        await expect(
          backend.compute({ fixed, moving: moving.subarray(1), channels, dims, radius: 1, smoothing }),
        ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      } finally {
        await backend.close();
      }
    });
  }
});
