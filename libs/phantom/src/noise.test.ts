import { describe, expect, it } from 'vitest';

import { addGaussianNoise, normalQuantile } from './noise.js';

describe('noise', () => {
  it('inverts the standard normal CDF', () => {
    // Reference quantiles from statistical tables.
    expect(normalQuantile(0.5)).toBeCloseTo(0, 12);
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963985, 8);
    expect(normalQuantile(0.001)).toBeCloseTo(-3.090232306, 8);
    expect(normalQuantile(0.8413447461)).toBeCloseTo(1, 8);
  });

  it('adds zero-mean noise of the requested sigma, clamped to the CT range', () => {
    const v = new Int16Array(200_000).fill(100);
    addGaussianNoise(v, 30, 42);
    let s = 0;
    let s2 = 0;
    for (const x of v) {
      s += x - 100;
      s2 += (x - 100) ** 2;
    }
    const mean = s / v.length;
    expect(Math.abs(mean)).toBeLessThan(0.3);
    // Rounding to integers adds 1/12 to the variance.
    expect(Math.sqrt(s2 / v.length - mean * mean)).toBeCloseTo(Math.sqrt(900 + 1 / 12), 0);
    // Within one sigma: 68.3 %.
    const within = v.filter((x) => Math.abs(x - 100) <= 30).length / v.length;
    expect(within).toBeGreaterThan(0.67);
    expect(within).toBeLessThan(0.695);
    const air = new Int16Array(1000).fill(-1020);
    addGaussianNoise(air, 50, 1);
    expect(Math.min(...air)).toBe(-1024);
  });
});
