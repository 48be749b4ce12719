import { describe, expect, it } from 'vitest';

import { computeAxisWeights, resizeBicubicAa } from './resize.js';

/** Hand-derived weights (see comments) for torch's antialiased bicubic, a = -0.5. */
describe('antialiased bicubic weights', () => {
  it('5 -> 3 (downsampling: support 2 * 5/3, kernel stretched by 3/5)', () => {
    const w = computeAxisWeights(5, 3);
    // o = 0: centre 5/6, window [0, 4); kernel at (j + 0.5 - 5/6) * 0.6 = -0.2, 0.4, 1.0, 1.6
    // f(0.2) = 0.912, f(0.4) = 0.696, f(1.0) = 0, f(1.6) = -0.048; sum 1.56.
    expect(w.starts[0]).toBe(0);
    expect(w.counts[0]).toBe(4);
    const expected0 = [0.912 / 1.56, 0.696 / 1.56, 0, -0.048 / 1.56];
    expected0.forEach((e, j) => expect(w.weights[j]).toBeCloseTo(e, 12));
    // o = 1: centre 2.5, window [0, 5) symmetric: x = -1.2, -0.6, 0, 0.6, 1.2
    // f(1.2) = (((1.2 - 5) * 1.2 + 8) * 1.2 - 4) * -0.5 = -0.064, f(0.6) = (1.5 * 0.6 - 2.5) * 0.36 + 1 = 0.424, f(0) = 1.
    const raw1 = [-0.064, 0.424, 1, 0.424, -0.064];
    const s1 = raw1.reduce((a, b) => a + b, 0);
    expect(w.starts[1]).toBe(0);
    expect(w.counts[1]).toBe(5);
    raw1.forEach((e, j) => expect(w.weights[w.taps + j]).toBeCloseTo(e / s1, 12));
  });

  it('3 -> 7 (upsampling: support 2, unscaled kernel)', () => {
    const w = computeAxisWeights(3, 7);
    // o = 0: centre 3/14, window [0, 2): x = 0.5 - 3/14 = 2/7 and 9/7.
    // f(2/7) = (1.5 * 2/7 - 2.5) * 4/49 + 1 = 0.830904..., f(9/7) = -0.0728863...
    const f0 = (1.5 * (2 / 7) - 2.5) * (4 / 49) + 1;
    const t = 9 / 7;
    const f1 = (((t - 5) * t + 8) * t - 4) * -0.5;
    expect(f0).toBeCloseTo(0.830904, 6);
    expect(f1).toBeCloseTo(-0.0728863, 6);
    expect(w.counts[0]).toBe(2);
    expect(w.weights[0]).toBeCloseTo(f0 / (f0 + f1), 12);
    expect(w.weights[1]).toBeCloseTo(f1 / (f0 + f1), 12);
    // o = 3: centre 1.5, window [0, 3): x = -1, 0, 1 -> weights 0, 1, 0: an exact copy of sample 1
    // (the zero taps are trimmed).
    expect(w.starts[3]).toBe(1);
    expect(w.counts[3]).toBe(1);
    expect(w.weights[3 * w.taps]).toBe(1);
    // Every row sums to 1.
    for (let o = 0; o < 7; o++) {
      let s = 0;
      for (let j = 0; j < w.counts[o]!; j++) s += w.weights[o * w.taps + j]!;
      expect(s).toBeCloseTo(1, 12);
    }
  });

  it('2D resize equals the naive double sum of separable weights (5x3 -> 3x7)', () => {
    const inH = 5;
    const inW = 3;
    const src = Float64Array.from({ length: inH * inW }, (_, i) => Math.sin(i * 1.7) * 100 + i);
    const out = resizeBicubicAa(src, inH, inW, 3, 7);
    const wy = computeAxisWeights(inH, 3);
    const wx = computeAxisWeights(inW, 7);
    for (let y = 0; y < 3; y++) {
      for (let x = 0; x < 7; x++) {
        let acc = 0;
        for (let a = 0; a < wy.counts[y]!; a++) {
          for (let b = 0; b < wx.counts[x]!; b++) {
            acc +=
              wy.weights[y * wy.taps + a]! *
              wx.weights[x * wx.taps + b]! *
              src[(wy.starts[y]! + a) * inW + wx.starts[x]! + b]!;
          }
        }
        expect(out[y * 7 + x]).toBeCloseTo(acc, 10);
      }
    }
  });

  it('an unscaled axis is an exact copy', () => {
    const w = computeAxisWeights(9, 9);
    for (let o = 0; o < 9; o++) {
      expect(w.starts[o]).toBe(o);
      expect(w.counts[o]).toBe(1);
      expect(w.weights[o * w.taps]).toBe(1);
    }
  });

  it('a constant image stays constant', () => {
    const out = resizeBicubicAa(new Float64Array(13 * 9).fill(-1024), 13, 9, 512, 512);
    let worst = 0;
    for (const v of out) worst = Math.max(worst, Math.abs(v + 1024));
    expect(worst).toBeLessThan(1e-9);
  });
});
