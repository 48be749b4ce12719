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
