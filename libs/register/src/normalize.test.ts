import { describe, expect, it } from 'vitest';

import { mulberry32 } from '@curia/tensors';
import { percentile } from '@curia/volume';

import type { GridField } from './field.js';
import { IDENTITY } from './grid.js';
import { intensityWindow, normalizeIntensities } from './normalize.js';

function field(values: ArrayLike<number>): GridField {
  return {
    grid: { dims: [values.length, 1, 1], affine: IDENTITY },
    channels: 1,
    data: Float32Array.from(values),
  };
}

describe('normalizeIntensities', () => {
  it('clips CT to [-1000, 1500] HU and maps it linearly to [0, 1]', () => {
    const out = normalizeIntensities(field([-3000, -1000, 250, 1500, 4000]), 'ct');
    expect(Array.from(out.data)).toEqual([0, 0, 0.5, 1, 1]);
  });

  it('maps the 0.5–99.5 percentiles of MR to [0, 1], ignoring a few outliers', () => {
    const values = Array.from({ length: 1000 }, (_, i) => i);
    values[17] = 1e6; // one hot voxel
    const [lo, hi] = intensityWindow(field(values), 'mr');
    expect(lo).toBeCloseTo(4.995, 6);
    expect(hi).toBeCloseTo(995.005, 6);
    const out = normalizeIntensities(field(values), 'other');
    expect(out.data[500]).toBeCloseTo((500 - lo) / (hi - lo), 6);
    expect(out.data[17]).toBe(1);
    expect(out.data[0]).toBe(0);
  });

  it('estimates the percentiles on a subsample of large volumes within 0.5% of the range', () => {
    const rand = mulberry32(3);
    const values = Float32Array.from({ length: 1_000_003 }, () => 100 + 900 * rand() ** 2);
    const [lo, hi] = intensityWindow(field(values), 'pet');
    const all = Float64Array.from(values);
    expect(Math.abs(lo - percentile(all, 0.5))).toBeLessThan(0.005 * 900);
    expect(Math.abs(hi - percentile(all, 99.5))).toBeLessThan(0.005 * 900);
  });

  it('turns a constant image into zeros', () => {
    expect(Array.from(normalizeIntensities(field([7, 7, 7]), 'mr').data)).toEqual([0, 0, 0]);
  });
});
