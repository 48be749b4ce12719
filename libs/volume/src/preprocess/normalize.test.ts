import { describe, expect, it } from 'vitest';

import { copyInto, zscoreInto } from './normalize.js';

describe('slice normalisation', () => {
  it('z-scores with the unbiased std and returns the statistics it used', () => {
    const v = Float64Array.from([1, 2, 3, 4]);
    const out = new Float32Array(4);
    const s = zscoreInto(v, 4, out, 1e-6);
    // mean 2.5, squared deviations 2.25+0.25+0.25+2.25 = 5, unbiased var 5/3.
    expect(s.mean).toBe(2.5);
    expect(s.std).toBeCloseTo(Math.sqrt(5 / 3), 12);
    expect([s.min, s.max]).toEqual([1, 4]);
    expect(out[0]).toBeCloseTo(-1.5 / Math.sqrt(5 / 3), 6);
    // value = pixel * std + mean recovers the input.
    out.forEach((p, i) => expect(p * s.std + s.mean).toBeCloseTo(v[i]!, 5));
  });

  it('maps constant slices to std 1 and reports the range without normalisation', () => {
    const c = Float64Array.from([7, 7, 7]);
    const out = new Float32Array(3);
    expect(zscoreInto(c, 3, out, 1e-6)).toEqual({ min: 7, max: 7, mean: 7, std: 1 });
    expect([...out]).toEqual([0, 0, 0]);
    expect(copyInto(Float64Array.from([-3, 5]), 2, new Float32Array(2))).toEqual({
      min: -3,
      max: 5,
      mean: 0,
      std: 1,
    });
  });
});

describe('zscoreInto on CT-like data', () => {
  it('matches the textbook two-pass mean and unbiased std, also far from zero and near-constant', () => {
    let seed = 99;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const cases: Float64Array[] = [
      Float64Array.from({ length: 512 * 512 }, (_, i) => (i % 7 === 0 ? 1200 : -1000) + 80 * rand()),
      Float64Array.from({ length: 4099 }, () => 1e6 + 1e-3 * rand()),
      Float64Array.from({ length: 1000 }, (_, i) => (i === 999 ? 3000 : 0)),
    ];
    for (const v of cases) {
      const n = v.length;
      let sum = 0;
      for (const x of v) sum += x;
      const mean = sum / n;
      let ss = 0;
      for (const x of v) ss += (x - mean) ** 2;
      const std = Math.sqrt(ss / (n - 1));
      const out = new Float32Array(n);
      const s = zscoreInto(v, n, out, 1e-6);
      expect(Math.abs(s.mean - mean)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(mean)));
      expect(Math.abs(s.std - std) / std).toBeLessThan(1e-9);
      for (let i = 0; i < n; i += 97) expect(Math.abs(out[i]! - (v[i]! - mean) / std)).toBeLessThan(1e-5);
    }
  });
});
