import { projectTokens } from '@curia/model';
import { computeGeometry } from '@curia/volume';
import { describe, expect, it } from 'vitest';

import { applyPoint } from './grid.js';
import { fitTokenProjection, sampleSlices, TokenFieldAssembler, tokenGrid } from './token-features.js';

describe('token grid', () => {
  it('puts token centres where the align_corners=False resize puts them', () => {
    // An oblique RAS NIfTI-like grid: 40 columns × 30 rows × 5 slices stored as (i, j, k).
    const affine = [-0.8, 0.1, 0, 50, 0.05, -0.9, 0, 60, 0, 0, 2.5, -20, 0, 0, 0, 1];
    const geom = computeGeometry([40, 30, 5], affine, 'RAS');
    const g = 8;
    const grid = tokenGrid(geom, g);
    expect(grid.dims).toEqual([8, 8, 5]);
    const [, rows, cols] = geom.canonicalDims;
    for (const [tx, ty, k] of [
      [0, 0, 0],
      [7, 3, 4],
      [2.5, 6, 1],
    ] as const) {
      const col = ((tx + 0.5) * cols) / g - 0.5;
      const row = ((ty + 0.5) * rows) / g - 0.5;
      const want = applyPoint(geom.canonicalAffine, [col, row, k]);
      const got = applyPoint(grid.affine, [tx, ty, k]);
      got.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 9));
    }
  });

  it('refuses a non-integer side', () => {
    const geom = computeGeometry([4, 4, 4], [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], 'LPS');
    expect(() => tokenGrid(geom, 2.5)).toThrow(/positive integer/);
  });
});

describe('TokenFieldAssembler', () => {
  const grid = {
    dims: [2, 2, 3] as [number, number, number],
    affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
  };

  it('transposes token-major slices into a channel-major field, in any slice order', () => {
    const a = new TokenFieldAssembler(grid, 2);
    for (const k of [2, 0, 1]) {
      // token t, channel c = 100·k + 10·t + c
      a.addSlice(
        k,
        Float32Array.from({ length: 8 }, (_, i) => 100 * k + 10 * Math.floor(i / 2) + (i % 2)),
      );
    }
    const f = a.field();
    expect(f.channels).toBe(2);
    const n = 12;
    for (let k = 0; k < 3; k++)
      for (let t = 0; t < 4; t++)
        for (let c = 0; c < 2; c++) expect(f.data[c * n + k * 4 + t]).toBe(100 * k + 10 * t + c);
  });

  it('refuses a missing, repeated or misshapen slice', () => {
    const a = new TokenFieldAssembler(grid, 2);
    a.addSlice(0, new Float32Array(8));
    expect(() => a.addSlice(0, new Float32Array(8))).toThrow(/twice/);
    expect(() => a.addSlice(1, new Float32Array(7))).toThrow(/expected 4×2/);
    expect(() => a.addSlice(3, new Float32Array(8))).toThrow(/outside/);
    expect(() => a.field()).toThrow(/2 token slices never came/);
  });
});

describe('fitTokenProjection', () => {
  it('finds the planted directions, orthonormal, in the layout Embed projects with', () => {
    const dim = 12;
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
    // Tokens = mean + 5·a·e3 + 2·b·e7 + small noise.
    const mean = Float32Array.from({ length: dim }, (_, d) => d * 0.1);
    const sample = (n: number) => {
      const x = new Float32Array(n * dim);
      for (let t = 0; t < n; t++) {
        const a = rand(),
          b = rand();
        for (let d = 0; d < dim; d++) x[t * dim + d] = mean[d]! + 0.01 * rand();
        x[t * dim + 3]! += 5 * a;
        x[t * dim + 7]! += 2 * b;
      }
      return x;
    };
    const p = fitTokenProjection([sample(300), sample(500)], dim, 2, 256);
    expect(p.basis.length).toBe(dim * 2);
    expect(Math.abs(p.basis[3 * 2 + 0]!)).toBeGreaterThan(0.999);
    expect(Math.abs(p.basis[7 * 2 + 1]!)).toBeGreaterThan(0.999);
    for (let d = 0; d < dim; d++) if (d !== 3 && d !== 7) expect(p.mean[d]).toBeCloseTo(mean[d]!, 2);
    // Embed's projection of the sample: channel 0 carries the larger variance.
    const x = sample(200);
    const y = projectTokens(x, p.basis, p.mean, dim, 2);
    let v0 = 0,
      v1 = 0;
    for (let t = 0; t < 200; t++) {
      v0 += y[2 * t]! ** 2;
      v1 += y[2 * t + 1]! ** 2;
    }
    expect(v0 / v1).toBeGreaterThan(4);
  });

  it('refuses more channels than dimensions', () => {
    expect(() => fitTokenProjection([new Float32Array(40)], 4, 5)).toThrow(/\[1, 4\]/);
  });
});

describe('sampleSlices', () => {
  it('centres the picks in even stretches and takes every slice of a short volume', () => {
    expect(sampleSlices(30)).toEqual([2, 7, 12, 17, 22, 27]);
    expect(sampleSlices(30, 2)).toEqual([7, 22]);
    expect(sampleSlices(4)).toEqual([0, 1, 2, 3]);
    expect(sampleSlices(1)).toEqual([0]);
  });
});
