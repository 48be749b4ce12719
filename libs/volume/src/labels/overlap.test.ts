import { describe, expect, it } from 'vitest';

import { dice, hd95, squaredDistanceTo, surfaceOf } from './overlap.js';

const DIMS: [number, number, number] = [20, 18, 16];
const N = DIMS[0] * DIMS[1] * DIMS[2];
const at = (i: number, j: number, k: number): number => i + DIMS[0] * (j + DIMS[1] * k);

/** A box [lo, hi) of `value`. */
function box(lo: number[], hi: number[], value = 1, into = new Uint8Array(N)): Uint8Array {
  for (let k = lo[2]!; k < hi[2]!; k++)
    for (let j = lo[1]!; j < hi[1]!; j++) for (let i = lo[0]!; i < hi[0]!; i++) into[at(i, j, k)] = value;
  return into;
}

describe('overlap measures', () => {
  it('computes Dice from the overlap', () => {
    const a = box([2, 2, 2], [6, 6, 6]); // 64 voxels
    const b = box([4, 2, 2], [8, 6, 6]); // 64, overlap 32
    expect(dice(a, b, 1)).toBeCloseTo(0.5, 12);
    expect(dice(a, a, 1)).toBe(1);
    expect(dice(a, b, 7)).toBe(1); // both empty
    // A set of values scores as one label (two kidneys as one organ); maps of different sizes are refused.
    expect(dice([2, 3], [3, 2], [2, 3])).toBe(1);
    expect(dice([2, 3], [3, 2], 2)).toBe(0);
    expect(() => dice([1], [1, 1], 1)).toThrow(/label maps differ in size: 1 vs 2/);
  });

  it('finds exact Euclidean distances with anisotropic spacing (brute force agrees)', () => {
    const sites = new Uint8Array(N);
    for (const p of [at(1, 1, 1), at(15, 3, 9), at(7, 16, 14)]) sites[p] = 1;
    const spacing: [number, number, number] = [0.8, 1.5, 2.5];
    const d = squaredDistanceTo(sites, DIMS, spacing);
    const pts = [
      [1, 1, 1],
      [15, 3, 9],
      [7, 16, 14],
    ];
    for (let p = 0; p < N; p += 7) {
      const i = p % DIMS[0];
      const j = Math.floor(p / DIMS[0]) % DIMS[1];
      const k = Math.floor(p / (DIMS[0] * DIMS[1]));
      const want = Math.min(
        ...pts.map(
          ([a, b, c]) =>
            ((i - a!) * spacing[0]) ** 2 + ((j - b!) * spacing[1]) ** 2 + ((k - c!) * spacing[2]) ** 2,
        ),
      );
      expect(d[p]).toBeCloseTo(want, 9);
    }
  });

  it('gives HD95 = the shift for a shifted box, 0 for identical masks, undefined for an empty one', () => {
    const a = box([4, 4, 4], [12, 12, 12]);
    const b = box([7, 4, 4], [15, 12, 12]);
    expect(surfaceOf(a, DIMS, 1).reduce((s, v) => s + v, 0)).toBe(512 - 216);
    expect(hd95(a, a, 1, DIMS, [1, 1, 1])).toBe(0);
    expect(hd95(a, b, 1, DIMS, [2, 1, 1])).toBeCloseTo(6, 9);
    expect(hd95(a, new Uint8Array(N), 1, DIMS, [1, 1, 1])).toBeUndefined();
  });
});
