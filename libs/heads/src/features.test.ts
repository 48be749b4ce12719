import { describe, expect, it } from 'vitest';

import {
  avgPooledTokens,
  clsFeatures,
  concatFeatures,
  maskPooledFeatures,
  maxPoolMask,
  type TokenSource,
} from './features.js';

/** One image, grid 4×4, hidden 2, one register token: token value = [patch index, −patch index]. */
function source(): TokenSource {
  const tokens = 1 + 1 + 16;
  const t = new Float32Array(tokens * 2);
  t[0] = 100;
  t[1] = 200;
  for (let p = 0; p < 16; p++) {
    t[(2 + p) * 2] = p;
    t[(2 + p) * 2 + 1] = -p;
  }
  return {
    lastHiddenState: t,
    lastBlockPrenorm: t.map((v) => v * 2),
    batch: 1,
    tokens,
    hidden: 2,
    numRegisterTokens: 1,
  };
}

describe('feature helpers', () => {
  it('takes the CLS row of the requested stream', () => {
    expect([...clsFeatures(source(), 'post').data]).toEqual([100, 200]);
    expect([...clsFeatures(source(), 'pre').data]).toEqual([200, 400]);
  });

  it('average-pools k×k patches in row-major pooled order, skipping registers', () => {
    const b = avgPooledTokens(source(), 'post', 2);
    expect(b.tokensPerSlice).toBe(4);
    // Top-left 2×2 block holds patches 0,1,4,5 → mean 2.5.
    expect([...b.data]).toEqual([2.5, -2.5, 4.5, -4.5, 10.5, -10.5, 12.5, -12.5]);
    expect([...avgPooledTokens(source(), 'post', 4).data]).toEqual([7.5, -7.5]);
    // kernel_size 0 = global mean over the 16 patches (mean of 0..15 = 7.5), one token per slice.
    const g = avgPooledTokens(source(), 'pre', 0);
    expect(g.tokensPerSlice).toBe(1);
    expect([...g.data]).toEqual([15, -15]);
    expect(() => avgPooledTokens(source(), 'post', 5)).toThrow(
      /kernel_size 5 must be an integer in \[0, 4\]/,
    );
  });

  it('max-pools masks to the token grid and averages tokens under them', () => {
    const mask = new Float32Array(8 * 8);
    mask[0] = 1; // pixel (0,0) → cell 0
    mask[2 * 8 + 7] = 3; // pixel (2,7) → cell (1,3) = 7
    const pooled = maxPoolMask(mask, 1, 8, 8, 4);
    expect(pooled[0]).toBe(1);
    expect(pooled[7]).toBe(3);
    expect(pooled.reduce((a, b) => a + b, 0)).toBe(4);
    const weighted = maskPooledFeatures(source(), 'post', 'mask', mask, 8, 8);
    expect(weighted.data[0]).toBeCloseTo((0 * 1 + 7 * 3) / 4, 6);
    expect(weighted.maskCounts![0]).toBe(2);
    const binary = maskPooledFeatures(source(), 'post', 'binary', mask, 8, 8);
    expect(binary.data[0]).toBeCloseTo(3.5, 6);
    const empty = maskPooledFeatures(source(), 'post', 'mask', new Float32Array(64), 8, 8);
    expect(empty.maskCounts![0]).toBe(0);
  });

  it('concatenates chunked features along slices', () => {
    const a = {
      slices: 1,
      hidden: 2,
      blocks: [{ data: Float32Array.of(1, 2), tokensPerSlice: 1, maskCounts: Float64Array.of(3) }],
    };
    const b = {
      slices: 2,
      hidden: 2,
      blocks: [{ data: Float32Array.of(3, 4, 5, 6), tokensPerSlice: 1, maskCounts: Float64Array.of(0, 1) }],
    };
    const c = concatFeatures([a, b]);
    expect(c.slices).toBe(3);
    expect([...c.blocks[0]!.data]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...c.blocks[0]!.maskCounts!]).toEqual([3, 0, 1]);
  });
});
