import { describe, expect, it } from 'vitest';

import { thrownText as code } from '@curia/errors/testing';

import { HU, PHANTOM_LABEL_NAMES } from './anatomy.js';
import { generatePhantom } from './generate.js';
import { applyAffine } from './geometry.js';
import type { Phantom } from './options.js';

// 128 x 128 at 3.2 mm and 32 slices of 5 mm cover the same 41 x 41 x 16 cm as the default grid.
const SMALL = { size: [128, 128, 32] as const, spacing: [3.2, 3.2, 5] as const };

function labelStats(p: Phantom): { mean: Float64Array; count: Float64Array; centroidRas: number[][] } {
  const n = PHANTOM_LABEL_NAMES.length;
  const sum = new Float64Array(n);
  const count = new Float64Array(n);
  const idx = Array.from({ length: n }, () => [0, 0, 0]);
  const [nx, ny, nz] = p.dims;
  for (let k = 0, o = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, o++) {
        const l = p.labels[o]!;
        sum[l]! += p.data[o]!;
        count[l]!++;
        const c = idx[l]!;
        c[0]! += i;
        c[1]! += j;
        c[2]! += k;
      }
    }
  }
  const mean = sum.map((s, l) => s / count[l]!);
  const centroidRas = idx.map((c, l) =>
    applyAffine(p.affine, c[0]! / count[l]!, c[1]! / count[l]!, c[2]! / count[l]!),
  );
  return { mean, count, centroidRas };
}

const label = (name: string): number => {
  const v = PHANTOM_LABEL_NAMES.indexOf(name);
  if (v < 0) throw new Error(`no label ${name}`);
  return v;
};

describe('generatePhantom', () => {
  it('is deterministic per seed; the seed changes only the noise', () => {
    const a = generatePhantom({ ...SMALL, seed: 7 });
    const b = generatePhantom({ ...SMALL, seed: 7 });
    const c = generatePhantom({ ...SMALL, seed: 8 });
    expect(Buffer.from(a.data.buffer).equals(Buffer.from(b.data.buffer))).toBe(true);
    expect(Buffer.from(a.labels).equals(Buffer.from(b.labels))).toBe(true);
    expect(Buffer.from(a.labels).equals(Buffer.from(c.labels))).toBe(true);
    let differing = 0;
    for (let i = 0; i < a.data.length; i++) if (a.data[i] !== c.data[i]) differing++;
    expect(differing / a.data.length).toBeGreaterThan(0.9);
    expect(a.seed).toBe(7);
  });

  it('has the requested noise level and the noise-free HU of each tissue', () => {
    const clean = generatePhantom({ ...SMALL, noiseSigma: 0 });
    const noisy = generatePhantom({ ...SMALL, noiseSigma: 20, seed: 3 });
    // Residual over the liver (uniform 60 HU in the clean phantom): sample std ~ 20.
    let s = 0;
    let s2 = 0;
    let n = 0;
    for (let i = 0; i < clean.data.length; i++) {
      if (clean.labels[i] !== label('liver')) continue;
      expect(clean.data[i]).toBe(HU.liver);
      const d = noisy.data[i]! - clean.data[i]!;
      s += d;
      s2 += d * d;
      n++;
    }
    expect(n).toBeGreaterThan(10_000);
    expect(Math.abs(s / n)).toBeLessThan(0.5);
    expect(Math.sqrt(s2 / n - (s / n) ** 2)).toBeCloseTo(20, 0);
  });

  it('gives every organ a plausible mean HU and volume', () => {
    const p = generatePhantom({ ...SMALL, seed: 1 });
    const { mean, count } = labelStats(p);
    const voxelMl = (p.spacing[0] * p.spacing[1] * p.spacing[2]) / 1000;
    const expected: Record<string, [number, number, number, number]> = {
      // name: [min HU, max HU, min mL, max mL]
      liver: [50, 70, 900, 2200],
      spleen: [40, 60, 120, 450],
      kidney_left: [30, 60, 100, 260],
      kidney_right: [30, 60, 100, 260],
      gallbladder: [-5, 20, 10, 60],
      stomach: [-600, 40, 100, 600],
      pancreas: [35, 55, 15, 120],
      colon: [-700, 40, 100, 800],
      aorta: [130, 200, 20, 150],
      inferior_vena_cava: [80, 140, 20, 150],
      vertebrae: [300, 800, 100, 600],
      spinal_cord: [20, 50, 3, 40],
      iliopsoas_left: [35, 65, 5, 200],
      iliopsoas_right: [35, 65, 5, 200],
    };
    expect(Object.keys(expected).sort()).toEqual(PHANTOM_LABEL_NAMES.slice(1).sort());
    for (const [name, [lo, hi, vLo, vHi]] of Object.entries(expected)) {
      const l = label(name);
      expect(mean[l], `${name} mean HU`).toBeGreaterThanOrEqual(lo);
      expect(mean[l], `${name} mean HU`).toBeLessThanOrEqual(hi);
      expect(count[l]! * voxelMl, `${name} volume mL`).toBeGreaterThanOrEqual(vLo);
      expect(count[l]! * voxelMl, `${name} volume mL`).toBeLessThanOrEqual(vHi);
    }
    // Air outside, fat rim and gas exist: the darkest voxels are air/gas, the brightest bone.
    const min = p.data.reduce((m, v) => Math.min(m, v), 0);
    expect(min).toBeLessThanOrEqual(-1000);
  });

  it.each(['LPS', 'RAS'] as const)(
    'places organs anatomically in patient space (%s storage)',
    (orientation) => {
      const p = generatePhantom({ ...SMALL, orientation, noiseSigma: 0 });
      const { centroidRas: c } = labelStats(p);
      // Patient-left coordinate = -R, anterior = +A, superior = +S.
      const left = (name: string): number => -c[label(name)]![0]!;
      const ant = (name: string): number => c[label(name)]![1]!;
      expect(left('kidney_left')).toBeGreaterThan(left('kidney_right') + 80);
      expect(left('spleen')).toBeGreaterThan(50);
      expect(left('liver')).toBeLessThan(-30);
      expect(left('gallbladder')).toBeLessThan(0);
      expect(left('aorta')).toBeGreaterThan(left('vertebrae'));
      expect(left('inferior_vena_cava')).toBeLessThan(left('vertebrae'));
      expect(ant('aorta')).toBeGreaterThan(ant('vertebrae'));
      expect(ant('kidney_left')).toBeLessThan(ant('stomach'));
      expect(left('iliopsoas_left')).toBeGreaterThan(0);
      expect(left('iliopsoas_right')).toBeLessThan(0);
    },
  );

  it('stores RAS as the in-plane reversal of LPS with mirrored affines', () => {
    const lps = generatePhantom({ ...SMALL, noiseSigma: 0, orientation: 'LPS' });
    const ras = generatePhantom({ ...SMALL, noiseSigma: 0, orientation: 'RAS' });
    const [nx, ny, nz] = lps.dims;
    const plane = nx * ny;
    for (let k = 0; k < nz; k += 5) {
      for (let t = 0; t < plane; t += 7) {
        const a = k * plane + t;
        const b = k * plane + plane - 1 - t;
        expect(ras.labels[b]).toBe(lps.labels[a]);
        expect(ras.data[b]).toBe(lps.data[a]);
      }
    }
    // Voxel (i, j, k) of LPS and (nx-1-i, ny-1-j, k) of RAS are the same point in RAS mm.
    const pa = applyAffine(lps.affine, 3, 5, 9);
    const pb = applyAffine(ras.affine, nx - 4, ny - 6, 9);
    pa.forEach((v, i) => expect(v).toBeCloseTo(pb[i]!, 9));
    expect(lps.affine.slice(0, 3)).toEqual([-3.2, 0, 0]);
    expect(ras.affine.slice(0, 3)).toEqual([3.2, 0, 0]);
  });

  it('rejects bad options with precise codes and honours abort', () => {
    expect(code(() => generatePhantom({ size: [0, 10, 10] }))).toMatch(/^INVALID_ARGUMENT: size/);
    expect(code(() => generatePhantom({ size: [2048, 2048, 2048] }))).toMatch(/^RESOURCE_EXHAUSTED/);
    expect(code(() => generatePhantom({ spacing: [1, -1, 1] }))).toMatch(/^INVALID_ARGUMENT: spacing/);
    expect(code(() => generatePhantom({ seed: 1.5 }))).toMatch(/^INVALID_ARGUMENT: seed/);
    expect(code(() => generatePhantom({ noiseSigma: -1 }))).toMatch(/^INVALID_ARGUMENT: noise/);
    const ac = new AbortController();
    ac.abort();
    expect(code(() => generatePhantom({ signal: ac.signal }))).toMatch(/^CANCELLED/);
  });

  it('defaults to 256x256x64 at 1.6 x 1.6 x 2.5 mm, LPS storage', () => {
    const p = generatePhantom();
    expect(p.dims).toEqual([256, 256, 64]);
    expect(p.spacing).toEqual([1.6, 1.6, 2.5]);
    expect(p.orientation).toBe('LPS');
    expect(p.data.length).toBe(256 * 256 * 64);
  });
});
