import { describe, expect, it } from 'vitest';

import { affineSearch, robustAffineFit } from './affine.js';
import type { GridField, Mat4 } from './field.js';
import { applyPoint, IDENTITY } from './grid.js';
import { m3Det, m3Mul, m3Of, m3Transpose, mat4From, rotationXYZ } from './optim-math.js';
import { smoothRandomVolume } from './optim-testing.js';
import { resampleToGrid } from './resample.js';
import { obliqueGrid } from './testing.js';

const deg = Math.PI / 180;
const grid = obliqueGrid([48, 44, 36], 0, [3, 3, 3], [-70, -60, -50]);
const centre = applyPoint(grid.affine, [23.5, 21.5, 17.5]);

/** An affine x ↦ c + A(x − c) + t about the grid centre. */
function about(a: readonly number[], t: readonly number[]): number[] {
  const ac = [0, 1, 2].map(
    (r) => a[3 * r]! * centre[0] + a[3 * r + 1]! * centre[1] + a[3 * r + 2]! * centre[2],
  );
  return mat4From(
    a,
    [0, 1, 2].map((r) => centre[r]! - ac[r]! + t[r]!),
  );
}

/** Moving features and fixed = moving seen through `truth` (fixed(x) = moving(truth · x)). */
function problem(truth: Mat4, seed: number): { fixed: GridField; moving: GridField } {
  const moving = smoothRandomVolume(grid, 4, seed);
  return { moving, fixed: resampleToGrid(moving, grid, truth, 0) };
}

/** Largest |a(x) − b(x)| (mm) over the corners of the grid's box. */
function cornerError(a: Mat4, b: Mat4): number {
  let worst = 0;
  for (const i of [0, 47]) {
    for (const j of [0, 43]) {
      for (const k of [0, 35]) {
        const x = applyPoint(grid.affine, [i, j, k]);
        const p = applyPoint(a, x);
        const q = applyPoint(b, x);
        worst = Math.max(worst, Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]));
      }
    }
  }
  return worst;
}

describe('affineSearch', () => {
  it('recovers a known 12-DOF affine from a smooth random volume', async () => {
    const rot = rotationXYZ(3 * deg, -2 * deg, 6 * deg);
    const scaleShear = [1.04, 0.02, 0, 0, 0.97, -0.015, 0, 0, 1.02];
    const truth = about(m3Mul(rot, scaleShear), [5, -4, 3]);
    const { fixed, moving } = problem(truth, 11);
    const stages = new Set<string>();
    const r = await affineSearch(fixed, (m, g) => resampleToGrid(moving, g, m, 0), {
      onProgress: (s) => stages.add(s),
    });
    const t = r.fixedToMoving;
    // Translation at the centre within half a voxel (1.5 mm), every matrix entry within 0.02.
    const p = applyPoint(t, centre);
    const q = applyPoint(truth, centre);
    expect(Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2])).toBeLessThan(1.5);
    for (const i of [0, 1, 2, 4, 5, 6, 8, 9, 10]) expect(Math.abs(t[i]! - truth[i]!)).toBeLessThan(0.02);
    expect(cornerError(t, truth)).toBeLessThan(1.5);
    expect(r.coarseSsd.after).toBeLessThan(r.coarseSsd.before);
    expect([...stages]).toEqual(['affine-coarse', 'affine-blocks']);
    console.log(
      `affine: centre error ${Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]).toFixed(3)} mm, ` +
        `max matrix error ${Math.max(...[0, 1, 2, 4, 5, 6, 8, 9, 10].map((i) => Math.abs(t[i]! - truth[i]!))).toFixed(4)}, ` +
        `corner error ${cornerError(t, truth).toFixed(3)} mm (coarse ${cornerError(r.coarse, truth).toFixed(2)} mm)`,
    );
  });

  it('rigid: recovers a rotation + translation and returns a proper rotation', async () => {
    const truth = about(rotationXYZ(-2 * deg, 4 * deg, -7 * deg), [-6, 3, 2]);
    const { fixed, moving } = problem(truth, 12);
    const r = await affineSearch(fixed, (m, g) => resampleToGrid(moving, g, m, 0), { rigid: true });
    const a = m3Of(r.fixedToMoving);
    const ata = m3Mul(m3Transpose(a), a);
    for (let i = 0; i < 9; i++) expect(ata[i]!).toBeCloseTo(i % 4 === 0 ? 1 : 0, 9);
    expect(m3Det(a)).toBeCloseTo(1, 9);
    expect(cornerError(r.fixedToMoving, truth)).toBeLessThan(1.5);
  });

  it('is deterministic and answers identity for identical features', async () => {
    const { moving } = problem(IDENTITY, 13);
    const sampler = (m: Mat4, g: typeof grid): GridField => resampleToGrid(moving, g, m, 0);
    const a = await affineSearch(moving, sampler);
    const b = await affineSearch(moving, sampler);
    expect(a.fixedToMoving).toEqual(b.fixedToMoving);
    expect(cornerError(a.fixedToMoving, IDENTITY)).toBeLessThan(0.3);
  });

  it('rejects a sampler answering on the wrong grid, bad options, and stops when cancelled', async () => {
    const { moving } = problem(IDENTITY, 14);
    await expect(affineSearch(moving, () => moving)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const sampler = (m: Mat4, g: typeof grid): GridField => resampleToGrid(moving, g, m, 0);
    await expect(affineSearch(moving, sampler, { levels: [0] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    const ac = new AbortController();
    const run = affineSearch(moving, sampler, {
      signal: ac.signal,
      onProgress: (_, done) => {
        if (done === 40) ac.abort();
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'CANCELLED' });
  });
});

describe('robustAffineFit', () => {
  it('fits exactly through 30 % gross outliers (Tukey); Huber halves the least-squares error', () => {
    const truth = about(m3Mul(rotationXYZ(0.1, -0.05, 0.2), [1.1, 0, 0.05, 0, 0.9, 0, 0, 0, 1]), [3, 1, -2]);
    const m = 200;
    const xs = new Float64Array(3 * m);
    const ys = new Float64Array(3 * m);
    let s = 5;
    const rnd = (): number => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let p = 0; p < m; p++) {
      const x = [rnd() * 100 - 50, rnd() * 100 - 50, rnd() * 60 - 30];
      const y = applyPoint(truth, x);
      if (p % 10 < 3) for (let a = 0; a < 3; a++) y[a]! += (rnd() < 0.5 ? -1 : 1) * (20 + 30 * rnd());
      xs.set(x, 3 * p);
      ys.set(y, 3 * p);
    }
    const tukey = robustAffineFit(xs, ys, { rigid: false, robust: 'tukey', minScale: 1e-3 })!;
    for (let i = 0; i < 12; i++) expect(tukey.transform[i]!).toBeCloseTo(truth[i]!, 6);
    expect(tukey.inlierFraction).toBeCloseTo(0.7, 2);
    // Huber (not redescending) keeps a bias from gross outliers, but much less than least squares.
    const err = (t: readonly number[]): number => Math.max(...t.map((x, i) => Math.abs(x - truth[i]!)));
    const ls = robustAffineFit(xs, ys, { rigid: false, robust: 'huber', minScale: 1e-3, iterations: 1 })!;
    const huber = robustAffineFit(xs, ys, { rigid: false, robust: 'huber', minScale: 1e-3 })!;
    expect(err(huber.transform)).toBeLessThan(0.25 * err(ls.transform));
    expect(
      robustAffineFit(xs.subarray(0, 9), ys.subarray(0, 9), { rigid: false, robust: 'tukey', minScale: 1 }),
    ).toBeNull();
  });
});
