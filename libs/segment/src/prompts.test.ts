import { describe, expect, it } from 'vitest';

import { segmentByClicks, type ClickOptions } from './prompts.js';

const G = 16;
const D = 8;
const SLICES = 11;

/**
 * A volume of token features: an object (a disk of radius 5 − |s − 5| tokens at (8, 5)) on slices
 * 2..8, a look-alike disk at (8, 14) on every slice (one token apart at its widest), and background.
 */
function volume() {
  let seed = 3;
  const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;
  const object = (s: number, y: number, x: number) => {
    const r = 5 - Math.abs(s - 5);
    return r > 1 && (y - 8) ** 2 + (x - 5) ** 2 <= r * r;
  };
  const lookalike = (y: number, x: number) => (y - 8) ** 2 + (x - 14) ** 2 <= 4;
  const slices = Array.from({ length: SLICES }, (_, s) => {
    const t = new Float32Array(G * G * D);
    for (let y = 0; y < G; y++)
      for (let x = 0; x < G; x++) {
        const base = (y * G + x) * D;
        const kind = object(s, y, x) ? 0 : lookalike(y, x) ? 1 : 2;
        for (let j = 0; j < D; j++)
          t[base + j] =
            0.3 * rand() +
            (kind === 2 ? (j === 7 ? 2 : 0) : kind === 0 ? (j < 3 ? 1 : 0) : j < 3 ? 1 : j === 3 ? 0.4 : 0);
      }
    return t;
  });
  return { slices, object, lookalike };
}

const options = (slices: Float32Array[], extra: Partial<ClickOptions> = {}): ClickOptions => ({
  slices: SLICES,
  rows: 64,
  cols: 64,
  grid: G,
  dim: D,
  tokens: (s) => slices[s]!,
  ...extra,
});

/** Canonical pixel centre of token (y, x) on a 64×64 slice. */
const px = (t: number): number => t * 4 + 1.5;

describe('segmentByClicks', () => {
  it('grows the clicked object on its slice, leaves the look-alike alone, and propagates through the volume', () => {
    const v = volume();
    const r = segmentByClicks([{ slice: 5, row: px(8), col: px(5), positive: true }], [], options(v.slices));
    expect([...r.keys()].sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    for (const [s, mask] of r) {
      let wrong = 0;
      for (let t = 0; t < G * G; t++)
        if (mask[t] !== (v.object(s, Math.floor(t / G), t % G) ? 1 : 0)) wrong++;
      expect(wrong).toBeLessThanOrEqual(2);
    }
  });

  it('without propagation answers the clicked slice only; a negative click and a box restrict the object', () => {
    const v = volume();
    const flat = segmentByClicks(
      [{ slice: 5, row: px(8), col: px(5), positive: true }],
      [],
      options(v.slices, { propagate: false }),
    );
    expect([...flat.keys()]).toEqual([5]);
    // A click on the look-alike with a negative click on the object: the object stays out.
    const other = segmentByClicks(
      [
        { slice: 5, row: px(8), col: px(14), positive: true },
        { slice: 5, row: px(8), col: px(5), positive: false },
      ],
      [],
      options(v.slices, { propagate: false }),
    );
    const mask = other.get(5)!;
    expect(mask[8 * G + 14]).toBe(1);
    expect(mask[8 * G + 5]).toBe(0);
    // A box over the upper half of the object keeps only that half.
    const boxed = segmentByClicks(
      [{ slice: 5, row: px(7), col: px(5), positive: true }],
      [{ slices: [5, 5], rows: [0, px(8)], cols: [0, 63] }],
      options(v.slices, { propagate: false }),
    );
    const b = boxed.get(5)!;
    for (let t = 0; t < G * G; t++) if (Math.floor(t / G) > 9) expect(b[t]).toBe(0);
    expect(b[6 * G + 5]).toBe(1);
  });

  it('needs a positive click', () => {
    const v = volume();
    expect(() =>
      segmentByClicks([{ slice: 1, row: 3, col: 3, positive: false }], [], options(v.slices)),
    ).toThrow(/positive click/);
  });
});
