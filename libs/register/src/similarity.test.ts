import { describe, expect, it } from 'vitest';

import { imageSimilarity } from './similarity.js';

describe('imageSimilarity', () => {
  const a = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i / 7) * 100);

  it('MSE is the mean squared difference over valid voxels', () => {
    const b = a.map((x, i) => x + (i % 2 ? 2 : 0));
    expect(imageSimilarity(a, b, 'mse')).toBeCloseTo(2, 5);
    const odd = Uint8Array.from({ length: 1000 }, (_, i) => i % 2);
    expect(imageSimilarity(a, b, 'mse', odd)).toBeCloseTo(4, 5);
  });

  it('NCC is 1 for an affine intensity change, −1 for a negation, ~0 for unrelated images', () => {
    expect(
      imageSimilarity(
        a,
        a.map((x) => 3 * x - 5),
        'ncc',
      ),
    ).toBeCloseTo(1, 9);
    expect(
      imageSimilarity(
        a,
        a.map((x) => -x),
        'ncc',
      ),
    ).toBeCloseTo(-1, 9);
    const noise = Float32Array.from({ length: 1000 }, (_, i) => (Math.sin(i * 12.9898) * 43758.5453) % 1);
    expect(Math.abs(imageSimilarity(a, noise, 'ncc'))).toBeLessThan(0.1);
    expect(imageSimilarity(a, new Float32Array(1000), 'ncc')).toBe(0);
  });

  it('MI is highest for a deterministic (even non-monotonic) relation and near 0 for independent images', () => {
    const self = imageSimilarity(a, a, 'mi');
    const squared = imageSimilarity(
      a,
      a.map((x) => x * x),
      'mi',
    );
    const shuffled = imageSimilarity(
      a,
      a.map((_, i) => a[(i * 389) % 1000]!),
      'mi',
    );
    expect(self).toBeGreaterThan(2);
    expect(squared).toBeGreaterThan(1.5);
    expect(shuffled).toBeLessThan(0.5 * squared);
  });

  it('is NaN with no valid voxel and refuses mismatched sizes', () => {
    expect(imageSimilarity(a, a, 'ncc', new Uint8Array(1000))).toBeNaN();
    expect(() => imageSimilarity(a, a.subarray(1), 'mse')).toThrow(/not one grid/);
  });
});
