import { describe, expect, it } from 'vitest';

import { voxelCount, type Grid, type GridField } from './field.js';
import { MIND_PAIRS, mindSsc, OnnxMind } from './mind.js';
import { normalizeIntensities } from './normalize.js';
import { smoothRandomVolume } from './optim-testing.js';
import { obliqueGrid, randomField, smoothDisplacement } from './testing.js';

/** MIND-SSC by its definition, voxel by voxel, in double precision (the module comment's steps 1–4). */
function bruteForceMind(f: GridField, d: number, r: number): Float64Array {
  const [nx, ny, nz] = f.grid.dims;
  const n = voxelCount(f.grid);
  const clamp = (v: number, len: number): number => Math.min(len - 1, Math.max(0, v));
  const I = (i: number, j: number, k: number): number =>
    f.data[clamp(i, nx) + nx * (clamp(j, ny) + ny * clamp(k, nz))]!;
  const nb = [
    [-d, 0, 0],
    [0, -d, 0],
    [0, 0, -d],
    [d, 0, 0],
    [0, d, 0],
    [0, 0, d],
  ];
  const sq = (i: number, j: number, k: number, a: number, b: number): number => {
    // Squared difference at an in-grid voxel (the patch index is clamped first).
    const [ci, cj, ck] = [clamp(i, nx), clamp(j, ny), clamp(k, nz)];
    const u = I(ci + nb[a]![0]!, cj + nb[a]![1]!, ck + nb[a]![2]!);
    const v = I(ci + nb[b]![0]!, cj + nb[b]![1]!, ck + nb[b]![2]!);
    return (u - v) ** 2;
  };
  const D = new Float64Array(12 * n);
  for (let k = 0, q = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, q++)
        MIND_PAIRS.forEach(([a, b], c) => {
          let s = 0;
          for (let w = -r; w <= r; w++)
            for (let v = -r; v <= r; v++) for (let u = -r; u <= r; u++) s += sq(i + u, j + v, k + w, a, b);
          D[c * n + q] = s / (2 * r + 1) ** 3;
        });
  const V = new Float64Array(n);
  for (let q = 0; q < n; q++) {
    let min = Infinity;
    for (let c = 0; c < 12; c++) min = Math.min(min, D[c * n + q]!);
    for (let c = 0; c < 12; c++) D[c * n + q]! -= min;
    for (let c = 0; c < 12; c++) V[q]! += D[c * n + q]! / 12;
  }
  const mean = V.reduce((s, v) => s + v, 0) / n;
  for (let q = 0; q < n; q++) {
    const v = Math.min(1e3 * mean, Math.max(1e-3 * mean, V[q]!));
    for (let c = 0; c < 12; c++) D[c * n + q] = Math.exp(-D[c * n + q]! / v);
  }
  return D;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]! / n;
    mb += b[i]! / n;
  }
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i]! - ma) * (b[i]! - mb);
    saa += (a[i]! - ma) ** 2;
    sbb += (b[i]! - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

describe('mindSsc', () => {
  const grid: Grid = obliqueGrid([11, 9, 7], 0, [1, 1, 1], [0, 0, 0]);

  it.each([
    [2, 1],
    [1, 0],
    [3, 2],
  ])('matches a brute-force implementation (dilation %i, radius %i) to 1e-5', (d, r) => {
    const f = randomField(grid, 7 + d + r);
    const fast = mindSsc(f, { dilation: d, radius: r });
    expect(fast.channels).toBe(12);
    expect(maxAbsDiff(fast.data, bruteForceMind(f, d, r))).toBeLessThanOrEqual(1e-5);
  });

  it('is nearly the same for an image and a non-monotonic remap of it; plain intensities are not', () => {
    // A smooth random image spread over [0, 1] and three periods of a sine as the intensity table.
    const g = obliqueGrid([40, 36, 30], 0, [1, 1, 1], [0, 0, 0]);
    const smoothImage = (seed: number): GridField => {
      const s = smoothDisplacement(g, 1, 14, seed);
      return { grid: g, channels: 1, data: s.data.slice(0, voxelCount(g)).map((v) => 0.5 + 0.5 * v) };
    };
    const image = smoothImage(5);
    const remapped = { ...image, data: image.data.map((v) => Math.sin(2 * Math.PI * 3 * v)) };
    const unrelated = smoothImage(6);
    const mind = mindSsc(image).data;
    expect(Math.abs(pearson(image.data, remapped.data))).toBeLessThan(0.1);
    expect(pearson(mind, mindSsc(remapped).data)).toBeGreaterThan(0.85);
    expect(pearson(mind, mindSsc(unrelated).data)).toBeLessThan(0.2);
  });

  it('is all ones on a constant image and refuses multi-channel fields', () => {
    const f = { grid, channels: 1, data: new Float32Array(voxelCount(grid)).fill(3) };
    expect(mindSsc(f).data.every((v) => v === 1)).toBe(true);
    expect(() => mindSsc({ grid, channels: 2, data: new Float32Array(2 * voxelCount(grid)) })).toThrow(
      /one channel/,
    );
  });
});

describe('MIND-SSC on ONNX Runtime', () => {
  // A regular 3 mm grid, and an oblique anisotropic one with odd dims (MIND works in voxels).
  const grids: Grid[] = [
    obliqueGrid([24, 20, 16], 0, [3, 3, 3], [0, 0, 0]),
    obliqueGrid([23, 17, 11], 30, [0.8, 1.1, 2.5], [-10, 4, 7]),
  ];

  it('matches mindSsc within 1e-5 on smooth random volumes and on noise', async () => {
    const ort = new OnnxMind({ executionProviders: ['cpu'], threads: 1 });
    try {
      for (const [g, grid] of grids.entries()) {
        const images = [smoothRandomVolume(grid, 1, 11 + g), randomField(grid, 21 + g)];
        for (const image of images) {
          for (const [d, r] of [
            [2, 1],
            [1, 0],
            [3, 2],
          ] as const) {
            const got = await ort.compute(image, { dilation: d, radius: r });
            expect(got.channels).toBe(12);
            expect(got.grid).toBe(grid);
            expect(maxAbsDiff(got.data, mindSsc(image, { dilation: d, radius: r }).data)).toBeLessThan(1e-5);
          }
        }
      }
      // A whole 3 mm abdomen, normalised as registerVolumes does: flat air where V is clamped to
      // 10⁻³·V̄, so V̄ must be summed accurately (one float32 sum over 720 000 voxels missed by 3e-5).
      const abdomen = obliqueGrid([120, 100, 60], 0, [3, 3, 3], [0, 0, 0]);
      const image = normalizeIntensities(smoothRandomVolume(abdomen, 1, 1), 'mr');
      expect(maxAbsDiff((await ort.compute(image)).data, mindSsc(image).data)).toBeLessThan(1e-5);
      expect(ort.name).toBe('onnx:cpu');
      const grid = grids[1]!;
      const constant = { grid, channels: 1, data: new Float32Array(voxelCount(grid)).fill(3) };
      expect((await ort.compute(constant)).data.every((v) => v === 1)).toBe(true);
      await expect(
        ort.compute({ grid, channels: 2, data: new Float32Array(2 * voxelCount(grid)) }),
      ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    } finally {
      await ort.close();
    }
  });
});
