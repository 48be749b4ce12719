import { mulberry32 } from '@curia/tensors';
import { describe, expect, it } from 'vitest';

import { boxSmooth } from './optim-smooth.js';
import { OnnxSmoothing, TS_SMOOTHING } from './smoothing.js';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function random(length: number, seed: number): Float64Array {
  const rnd = mulberry32(seed);
  return Float64Array.from({ length }, () => rnd() * 2 - 1);
}

describe('box smoothing backends', () => {
  // Odd dims, and axes of length 1 and 2 (windows wider than the axis).
  const cases = [
    { dims: [23, 17, 11] as const, channels: 3 },
    { dims: [1, 2, 5] as const, channels: 2 },
  ];

  it('ONNX graph matches boxSmooth (forward and adjoint, float32 and float64, in place)', async () => {
    const ort = new OnnxSmoothing({ executionProviders: ['cpu'], threads: 1 });
    try {
      for (const { dims, channels } of cases) {
        const x = random(channels * dims[0] * dims[1] * dims[2], dims[0]);
        for (const radius of [1, 2]) {
          for (const passes of [1, 3]) {
            for (const adjoint of [false, true]) {
              const want = boxSmooth(Float64Array.from(x), channels, dims, radius, passes, adjoint);
              const f64 = Float64Array.from(x);
              const got = await ort.smooth({ data: f64, channels, dims, radius, passes, adjoint });
              expect(got).toBe(f64);
              expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
              const f32 = Float32Array.from(x);
              await ort.smooth({ data: f32, channels, dims, radius, passes, adjoint });
              expect(maxAbsDiff(f32, want)).toBeLessThan(1e-6);
            }
          }
        }
      }
      expect(ort.name).toBe('onnx:cpu');
      // 0 passes or radius 0: untouched.
      const x = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8);
      await ort.smooth({ data: x, channels: 1, dims: [2, 2, 2], passes: 0 });
      expect([...x]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      await expect(
        ort.smooth({ data: new Float32Array(7), channels: 1, dims: [2, 2, 2] }),
      ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    } finally {
      await ort.close();
    }
  });

  it('the ONNX adjoint is the transpose of the ONNX forward filter', async () => {
    const ort = new OnnxSmoothing({ executionProviders: ['cpu'], threads: 1 });
    try {
      const dims = [9, 7, 6] as const;
      const len = 2 * 9 * 7 * 6;
      const x = random(len, 5);
      const y = random(len, 6);
      const bx = await ort.smooth({ data: Float64Array.from(x), channels: 2, dims, passes: 2 });
      const bty = await ort.smooth({
        data: Float64Array.from(y),
        channels: 2,
        dims,
        passes: 2,
        adjoint: true,
      });
      let lhs = 0;
      let rhs = 0;
      for (let v = 0; v < len; v++) {
        lhs += bx[v]! * y[v]!;
        rhs += x[v]! * bty[v]!;
      }
      expect(Math.abs(lhs - rhs)).toBeLessThan(1e-5 * Math.abs(lhs) + 1e-5);
    } finally {
      await ort.close();
    }
  });

  it('the TypeScript backend is boxSmooth, in place', async () => {
    const x = random(2 * 60, 9);
    const want = boxSmooth(Float64Array.from(x), 2, [5, 4, 3], 1, 2, true);
    const got = await TS_SMOOTHING.smooth({
      data: x,
      channels: 2,
      dims: [5, 4, 3],
      passes: 2,
      adjoint: true,
    });
    expect(got).toBe(x);
    expect([...got]).toEqual([...want]);
  });
});
