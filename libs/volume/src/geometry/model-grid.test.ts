import { describe, expect, it } from 'vitest';

import { gridTaps, nearestSourceIndices } from './model-grid.js';

describe('nearestSourceIndices', () => {
  it('samples at the align_corners=False pixel centres', () => {
    expect([...nearestSourceIndices(4, 8)]).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    expect([...nearestSourceIndices(8, 4)]).toEqual([1, 3, 5, 7]);
    expect([...nearestSourceIndices(3, 3)]).toEqual([0, 1, 2]);
    expect([...nearestSourceIndices(1, 5)]).toEqual([0, 0, 0, 0, 0]);
  });
});

describe('gridTaps', () => {
  const at = (t: ReturnType<typeof gridTaps>, s: number) =>
    Array.from({ length: t.taps }, (_, i) => [t.index[s * t.taps + i], t.weight[s * t.taps + i]! + 0]);

  it('puts source pixel centres on the grid at (s + 0.5)·grid/in − 0.5, repeating border cells', () => {
    // 4 source pixels on a 2-cell grid: coordinates -0.25, 0.25, 0.75, 1.25.
    const t = gridTaps(4, 2, 'linear');
    expect(at(t, 0)).toEqual([
      [0, 0.25],
      [0, 0.75],
    ]);
    expect(at(t, 1)).toEqual([
      [0, 0.75],
      [1, 0.25],
    ]);
    expect(at(t, 3)).toEqual([
      [1, 0.75],
      [1, 0.25],
    ]);
  });

  it('interpolates with the Keys a = −0.5 kernel: exact on cell centres, weights sum to 1', () => {
    const id = gridTaps(3, 3, 'cubic');
    expect(at(id, 1)).toEqual([
      [0, 0],
      [1, 1],
      [2, 0],
      [2, 0],
    ]);
    const t = gridTaps(101, 32, 'cubic');
    for (let s = 0; s < 101; s++) {
      const w = at(t, s).reduce((sum, [, x]) => sum + x!, 0);
      expect(w).toBeCloseTo(1, 6);
    }
    // Halfway between two cells, the inner taps weigh 0.5625 and the outer ones -0.0625.
    expect(at(gridTaps(1, 2, 'cubic'), 0)).toEqual([
      [0, -0.0625],
      [0, 0.5625],
      [1, 0.5625],
      [1, -0.0625],
    ]);
  });
});
