import { describe, expect, it } from 'vitest';

import {
  avgPoolTokens,
  clsTokens,
  maskPool,
  maskToTokenGrid,
  patchTokens,
  projectTokens,
} from './features.js';
import { mulberry32 } from './random-weights.js';

const G = 32;
const D = 5;

function randomTokens(n: number, seed: number): Float32Array {
  const u = mulberry32(seed);
  return Float32Array.from({ length: n }, () => u() * 2 - 1);
}

describe('maskPool', () => {
  it('averages exactly the tokens whose 16×16 patch touches the mask', () => {
    const patches = randomTokens(G * G * D, 1);
    const mask = new Float32Array(512 * 512);
    // A single pixel at the bottom-right corner of patch (row 2, col 3) ...
    mask[(2 * 16 + 15) * 512 + 3 * 16 + 15] = 1;
    // ... and a rectangle spanning pixels y 100..140, x 300..301 → patch rows 6..8, col 18.
    for (let y = 100; y <= 140; y++) for (let x = 300; x <= 301; x++) mask[y * 512 + x] = 1;
    const selected = [2 * G + 3, 6 * G + 18, 7 * G + 18, 8 * G + 18];
    const expected = new Array<number>(D).fill(0);
    for (const t of selected)
      for (let c = 0; c < D; c++) expected[c]! += patches[t * D + c]! / selected.length;
    const got = maskPool(patches, mask, D);
    for (let c = 0; c < D; c++) expect(got[c]).toBeCloseTo(expected[c]!, 6);
    const grid = maskToTokenGrid(mask, G);
    expect([...grid.keys()].filter((t) => grid[t])).toEqual(selected);
  });

  it('equals the plain mean for a full mask and rejects an empty one', () => {
    const patches = randomTokens(G * G * D, 2);
    const got = maskPool(patches, new Uint8Array(512 * 512).fill(1), D);
    for (let c = 0; c < D; c++) {
      let s = 0;
      for (let t = 0; t < G * G; t++) s += patches[t * D + c]!;
      expect(got[c]).toBeCloseTo(s / (G * G), 6);
    }
    expect(() => maskPool(patches, new Uint8Array(512 * 512), D)).toThrow(/no patch token/);
    expect(() => maskPool(patches, new Uint8Array(500 * 500), D)).toThrow(/divisible/);
  });
});

describe('avgPoolTokens', () => {
  it('matches AvgPool2d(k, stride k) computed over the (D, G, G) layout', () => {
    const patches = randomTokens(G * G * D, 3);
    // Channel-major copy, as torch sees it.
    const chw = new Float32Array(D * G * G);
    for (let t = 0; t < G * G; t++) for (let c = 0; c < D; c++) chw[c * G * G + t] = patches[t * D + c]!;
    for (const k of [1, 2, 3, 4, 32]) {
      const go = Math.floor(G / k);
      const got = avgPoolTokens(patches, k, D);
      expect(got.length).toBe(go * go * D);
      for (let c = 0; c < D; c++) {
        for (let oy = 0; oy < go; oy++) {
          for (let ox = 0; ox < go; ox++) {
            let s = 0;
            for (let y = oy * k; y < oy * k + k; y++)
              for (let x = ox * k; x < ox * k + k; x++) s += chw[c * G * G + y * G + x]!;
            expect(got[(oy * go + ox) * D + c]).toBeCloseTo(s / (k * k), 5);
          }
        }
      }
    }
    expect(() => avgPoolTokens(patches, 0, D)).toThrow(/kernel_size/);
  });
});

describe('token helpers', () => {
  it('split CLS, registers and patches', () => {
    const layout = { tokens: 1 + 2 + 4, hidden: 3, numRegisterTokens: 2 };
    const seq = Float32Array.from({ length: 2 * 7 * 3 }, (_, i) => i);
    expect([...clsTokens(seq, layout)]).toEqual([0, 1, 2, 21, 22, 23]);
    expect([...patchTokens(seq, layout, 1)]).toEqual(Array.from({ length: 12 }, (_, i) => 21 + 9 + i));
    expect(() => patchTokens(seq, layout, 2)).toThrow(/outside the batch/);
  });
});

describe('projectTokens', () => {
  /** (x − mean) · basis, one dot product at a time. */
  function naive(
    patches: Float32Array,
    basis: Float32Array,
    mean: Float32Array | undefined,
    h: number,
    c: number,
  ) {
    const n = patches.length / h;
    const out = new Float64Array(n * c);
    for (let t = 0; t < n; t++)
      for (let j = 0; j < c; j++) {
        let s = 0;
        for (let d = 0; d < h; d++) s += (patches[t * h + d]! - (mean?.[d] ?? 0)) * basis[d * c + j]!;
        out[t * c + j] = s;
      }
    return out;
  }

  it('equals (x − mean) · basis for any token count and channel count, with or without a mean', () => {
    const h = 24;
    for (const [n, c] of [
      [G * G, 8],
      [7, 5],
      [1, 1],
      [6, 64],
      [3, 2],
    ] as const) {
      const patches = randomTokens(n * h, 10 + n + c);
      // Large offsets, as in pre-LayerNorm tokens: the mean must come off before the product.
      for (let i = 0; i < patches.length; i += h) patches[i] = 300 + patches[i]!;
      const basis = randomTokens(h * c, 20 + c);
      const mean = randomTokens(h, 30);
      mean[0] = 300;
      for (const m of [mean, undefined]) {
        const got = projectTokens(patches, basis, m, h, c);
        const want = naive(patches, basis, m, h, c);
        expect(got.length).toBe(n * c);
        for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-4);
      }
    }
  });

  it('with an identity basis returns the centred tokens; rejects inconsistent sizes', () => {
    const h = 6;
    const patches = randomTokens(5 * h, 4);
    const eye = new Float32Array(h * h);
    for (let d = 0; d < h; d++) eye[d * h + d] = 1;
    const mean = Float32Array.from({ length: h }, (_, d) => d);
    const got = projectTokens(patches, eye, mean, h, h);
    for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo(patches[i]! - (i % h), 6);
    // Column c is direction c: a basis picking channel 2 then channel 0.
    const pick = new Float32Array(h * 2);
    pick[2 * 2 + 0] = 1;
    pick[0 * 2 + 1] = 1;
    expect([...projectTokens(patches.subarray(0, h), pick, undefined, h, 2)]).toEqual([
      patches[2],
      patches[0],
    ]);
    expect(() => projectTokens(patches, eye, mean, 7, h)).toThrow(/not a multiple of hidden 7/);
    expect(() => projectTokens(patches, eye, mean, h, 5)).toThrow(/basis has 36 values/);
    expect(() => projectTokens(patches, eye, mean.subarray(1), h, h)).toThrow(/mean has 5 values/);
  });
});
