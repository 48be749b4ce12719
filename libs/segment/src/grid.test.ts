import { describe, expect, it } from 'vitest';

import { computeGeometry } from '@curia/volume';

import { inputToCanonical, worldToInput } from './grid.js';

describe('prompt coordinates', () => {
  // A permuted, flipped grid: i → world -y, j → world z, k → world x (RAS), 2/3/4 mm.
  const affine = [0, 0, 4, 10, -2, 0, 0, 20, 0, 3, 0, -5, 0, 0, 0, 1];
  const g = computeGeometry([10, 20, 30], affine, 'RAS');

  it('maps world millimetres (either frame) back to input voxels', () => {
    const v: [number, number, number] = [3, 7, 11];
    const ras = [0, 1, 2].map(
      (r) =>
        affine[r * 4]! * v[0] + affine[r * 4 + 1]! * v[1] + affine[r * 4 + 2]! * v[2] + affine[r * 4 + 3]!,
    ) as [number, number, number];
    worldToInput(g, ras, 'RAS')!.forEach((x, i) => expect(x).toBeCloseTo(v[i]!, 9));
    worldToInput(g, [-ras[0], -ras[1], ras[2]], 'LPS')!.forEach((x, i) => expect(x).toBeCloseTo(v[i]!, 9));
  });

  it('maps input voxels to canonical positions like canonicalToInputIndex, inverted', () => {
    const c = inputToCanonical(g, [3, 7, 11]);
    // Canonical slices run along world z (input j), rows along P (input i: -y is posterior... i → -y = P), cols along L (input k → +x = R, flipped).
    expect(c.slice).toBe(7);
    expect(c.row).toBe(3);
    expect(c.col).toBe(30 - 1 - 11);
  });
});
