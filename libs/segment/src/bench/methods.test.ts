import { describe, expect, it } from 'vitest';

import {
  diceOver,
  evenlySpaced,
  fitIntervals,
  largestComponents,
  pixelPatchTokens,
  positionTokens,
  thresholdClasses,
} from './methods.js';

describe('segment-bench methods', () => {
  it('picks evenly spaced labelled slices: 3, 9, 15, 21, 27 of 30', () => {
    const all = Array.from({ length: 30 }, (_, i) => i);
    expect(evenlySpaced(all, 5)).toEqual([3, 9, 15, 21, 27]);
    expect(evenlySpaced([4, 7, 8, 20], 2)).toEqual([7, 20]);
    expect(() => evenlySpaced([1], 2)).toThrow();
  });

  it('lays out the raw pixels of each patch as a token (token-major, row-major within the patch)', () => {
    const size = 4;
    const px = Float32Array.from({ length: size * size }, (_, i) => i); // value = row·4 + col
    const t = pixelPatchTokens(px, size, 2);
    expect(t.length).toBe(4 * 4);
    expect([...t.subarray(0, 4)]).toEqual([0, 1, 4, 5]); // token (0, 0)
    expect([...t.subarray(4, 8)]).toEqual([2, 3, 6, 7]); // token (0, 1)
    expect([...t.subarray(12, 16)]).toEqual([10, 11, 14, 15]); // token (1, 1)
  });

  it("encodes a token's grid row and column as one-hots", () => {
    const t = positionTokens(3);
    expect(t.length).toBe(9 * 6);
    expect([...t.subarray(5 * 6, 6 * 6)]).toEqual([0, 1, 0, 0, 0, 1]); // token (1, 2)
  });

  it('fits percentile intervals on the given slices only; the narrowest interval wins overlaps', () => {
    const hu = [Float64Array.of(0, 10, 20, 30, 40, 50), Float64Array.of(1000, 1000, 1000, 1000, 1000, 1000)];
    const truth = [Uint8Array.of(1, 1, 1, 2, 2, 0), Uint8Array.of(1, 1, 1, 1, 2, 2)];
    const iv = fitIntervals(hu, truth, [0], 3, 0, 100);
    expect(iv.slice(1)).toEqual([
      { lo: 0, hi: 20 },
      { lo: 30, hi: 40 },
    ]);
    expect(fitIntervals(hu, truth, [0], 3, 25, 50)[1]).toEqual({ lo: 5, hi: 10 }); // interpolated
    // Class 1 [0, 20] overlaps class 3 [15, 100]: the narrower class 1 takes 15..20.
    const three = [...iv, { lo: 15, hi: 100 }];
    expect([...thresholdClasses(Float64Array.of(-5, 5, 18, 25, 35, 60, 200), three)]).toEqual([
      0, 1, 1, 3, 2, 3, 0,
    ]);
  });

  it('keeps each class’s largest 6-connected component across slices', () => {
    // 3 slices of 2×3: class 1 has a 2-voxel column through slices 0–1 and a lone voxel on slice 2.
    const pred = [
      Uint8Array.of(1, 0, 2, 0, 0, 0),
      Uint8Array.of(1, 0, 0, 0, 2, 2),
      Uint8Array.of(0, 0, 1, 0, 0, 0),
    ];
    const kept = largestComponents(pred, 2, 3, 3);
    expect(kept.map((p) => [...p])).toEqual([
      [1, 0, 0, 0, 0, 0],
      [1, 0, 0, 0, 2, 2],
      [0, 0, 0, 0, 0, 0],
    ]);
  });

  it('computes 3D Dice over the chosen slices, with merged classes', () => {
    const pred = [Uint8Array.of(1, 2, 0), Uint8Array.of(2, 2, 2)];
    const truth = [Uint8Array.of(1, 3, 3), Uint8Array.of(0, 0, 0)];
    expect(diceOver(pred, truth, [0], [1])).toBe(1);
    expect(diceOver(pred, truth, [0], [2])).toBe(0);
    expect(diceOver(pred, truth, [0], [2, 3])).toBeCloseTo((2 * 1) / (1 + 2), 12);
    expect(diceOver(pred, truth, [0, 1], [2, 3])).toBeCloseTo((2 * 1) / (4 + 2), 12);
    expect(diceOver(pred, truth, [1], [1])).toBeNaN();
  });
});
