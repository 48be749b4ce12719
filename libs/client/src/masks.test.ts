import { describe, expect, it } from 'vitest';

import { runLengthMask } from './masks.js';

describe('runLengthMask', () => {
  it('encodes C-order (k fastest) runs that start with a 0-run', () => {
    // dims (2, 2, 3): voxel (i, j, k) is number 6i + 3j + k in C order.
    const inside = new Set([1, 2, 3, 11]);
    const rle = runLengthMask([2, 2, 3], (i, j, k) => inside.has(6 * i + 3 * j + k), 'x');
    expect(rle).toEqual({ dims: [2, 2, 3], counts: [1, 3, 7, 1], label: 'x' });
  });

  it('opens with an empty 0-run when the first voxel is inside, and covers every voxel', () => {
    expect(runLengthMask([1, 1, 4], () => true).counts).toEqual([0, 4]);
    expect(runLengthMask([3, 1, 2], () => false)).toEqual({ dims: [3, 1, 2], counts: [6], label: '' });
  });
});
