import { describe, expect, it } from 'vitest';

import { ClassTable } from '../classes.js';
import { segmenterScores, smoothAcrossSlices } from '../segmenter.js';
import { fitSegmenter, type LabelledSlice } from './fit-segmenter.js';

const MODEL = { imageSize: 64, patchSize: 8 }; // an 8×8 token grid over 64×64 canonical slices
const G = 8;
const D = 12;
const TABLE = new ClassTable([
  { value: 3, name: 'liver' },
  { value: 7, name: 'spleen' },
]);

function rng(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

/**
 * Slices whose tokens each carry one label value (0, 3 or 7) painted over the token's 8×8 pixels;
 * token features encode the label of the token `shift` columns to the left (0 = its own), plus noise.
 */
function slices(count: number, shift: number, seed: number): LabelledSlice[] {
  const rand = rng(seed);
  const values = [0, 3, 7];
  return Array.from({ length: count }, () => {
    const cls = Array.from({ length: G * G }, () => Math.floor(rand() * 3));
    const labels = new Uint8Array(64 * 64);
    for (let y = 0; y < 64; y++)
      for (let x = 0; x < 64; x++)
        labels[y * 64 + x] = values[cls[Math.floor(y / 8) * G + Math.floor(x / 8)]!]!;
    const tokens = new Float32Array(G * G * D);
    for (let ty = 0; ty < G; ty++)
      for (let tx = 0; tx < G; tx++) {
        const src = tx - shift >= 0 ? cls[ty * G + tx - shift]! : Math.floor(rand() * 3);
        for (let j = 0; j < D; j++)
          tokens[(ty * G + tx) * D + j] = (j === src ? 3 : 0) + 0.5 * (rand() - 0.5) + 10;
      }
    return { tokens, labels, rows: 64, cols: 64 };
  });
}

describe('fitSegmenter', () => {
  it('learns a linear head from class fractions and reports cross-validated Dice per class', async () => {
    const r = await fitSegmenter(slices(6, 0, 1), {
      kind: 'linear',
      table: TABLE,
      model: MODEL,
      dim: D,
      folds: 3,
    });
    expect(r.folds).toBe(3);
    expect(r.tokens).toBe(6 * G * G);
    expect([...r.cvDice.keys()]).toEqual(['liver', 'spleen']);
    for (const d of r.cvDice.values()) expect(d).toBeGreaterThan(0.95);
    // The kernel reproduces the labels of unseen slices.
    const test = slices(1, 0, 99)[0]!;
    const scores = segmenterScores(r.head, test.tokens, G);
    let ok = 0;
    for (let t = 0; t < G * G; t++) {
      const best = [0, 1, 2].reduce((b, q) => (scores[q * G * G + t]! > scores[b * G * G + t]! ? q : b), 0);
      const truth = TABLE.indexOf(test.labels[Math.floor(t / G) * 8 * 64 + (t % G) * 8]!);
      if (best === truth) ok++;
    }
    expect(ok / (G * G)).toBeGreaterThan(0.95);
  });

  it('needs its 3×3 neighbourhood when the evidence sits in the next token (linear cannot)', async () => {
    const data = slices(6, 1, 2);
    const conv = await fitSegmenter(data, {
      kind: 'conv3x3',
      table: TABLE,
      model: MODEL,
      dim: D,
      folds: 3,
      convChannels: 8,
    });
    const linear = await fitSegmenter(data, { kind: 'linear', table: TABLE, model: MODEL, dim: D, folds: 3 });
    const mean = (m: ReadonlyMap<string, number>) => [...m.values()].reduce((a, b) => a + b, 0) / m.size;
    expect(mean(conv.cvDice)).toBeGreaterThan(0.8);
    expect(mean(linear.cvDice)).toBeLessThan(0.6);
    expect(conv.head.kernel.length).toBe(3 * D * 9);
  });

  it('refuses more folds than slices and an empty set', async () => {
    await expect(
      fitSegmenter(slices(2, 0, 3), { kind: 'linear', table: TABLE, model: MODEL, dim: D, folds: 3 }),
    ).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
    });
    await expect(
      fitSegmenter([], { kind: 'linear', table: TABLE, model: MODEL, dim: D }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('smoothAcrossSlices', () => {
  it('weighs neighbours ¼ ½ ¼ and renormalises at the ends', () => {
    const a = Float32Array.of(0);
    const b = Float32Array.of(4);
    const c = Float32Array.of(8);
    expect(smoothAcrossSlices(a, b, c)[0]).toBe(4);
    expect(smoothAcrossSlices(undefined, a, b)[0]).toBeCloseTo(4 / 3, 6);
  });
});
