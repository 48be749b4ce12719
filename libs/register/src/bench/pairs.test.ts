import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

import { sharedPathOrSkip } from '@curia/tensors';
import { describe, expect, it } from 'vitest';

import type { Grid } from '../field.js';
import { jacobianStats } from './metrics-field.js';
import {
  applyTransform,
  inverter,
  loadStudy,
  makePairs,
  minBumpJacobian,
  ORGANS,
  PAIR_PARAMS,
  readGridField,
  remapIntensity,
  roundTrip,
  writePair,
  type LabelVolume,
  type ScalarVolume,
  type Vec3,
} from './pairs.js';
import {
  det3,
  gaussianSmooth,
  sampleSpline,
  splineCoefficients,
  voxelToWorld,
  warpLabelsNearest,
  worldToVoxel,
} from './sampling.js';

/** An oblique grid (rotated 10° about S, anisotropic spacing) so no axis-aligned shortcut can pass. */
const GRID: Grid = (() => {
  const c = Math.cos(0.17);
  const s = Math.sin(0.17);
  const sp = [3, 2.5, 3.5];
  return {
    dims: [44, 48, 26],
    affine: [c * sp[0]!, -s * sp[1]!, 0, -60, s * sp[0]!, c * sp[1]!, 0, -70, 0, 0, sp[2]!, -40, 0, 0, 0, 1],
  };
})();

/** A smooth phantom: an air background, a soft-tissue ellipsoid with fat and five organ blobs. */
function phantom(): { fixed: ScalarVolume; labels: LabelVolume } {
  const [X, Y, Z] = GRID.dims;
  const n = X * Y * Z;
  const img = new Float32Array(n);
  const lab = new Uint8Array(n);
  const x: Vec3 = [0, 0, 0];
  const organs: [number, Vec3, number, number][] = [
    [1, [-20, -25, 0], 12, 45],
    [2, [10, -20, -10], 9, 30],
    [3, [25, 5, 5], 9, 35],
    [5, [-10, 5, 5], 16, 60],
    [6, [15, 20, -5], 10, -20],
  ];
  for (let k = 0, p = 0; k < Z; k++)
    for (let j = 0; j < Y; j++)
      for (let i = 0; i < X; i++, p++) {
        voxelToWorld(GRID, i, j, k, x);
        const c: Vec3 = [x[0] + 0, x[1] + 0, x[2] + 0];
        const body = (c[0] / 55) ** 2 + (c[1] / 50) ** 2 + (c[2] / 60) ** 2;
        let v = body < 1 ? (body > 0.7 ? -90 : 20) : -1000;
        for (const [value, centre, r, hu] of organs) {
          const d = Math.hypot(c[0] - centre[0], c[1] - centre[1], c[2] - centre[2]);
          if (d < r) {
            v = hu;
            lab[p] = value;
          }
        }
        img[p] = v;
      }
  const fixed = gaussianSmooth({ grid: GRID, data: img }, 4);
  return { fixed, labels: { grid: GRID, data: lab } };
}

describe('bench:register pairs', () => {
  const { fixed, labels } = phantom();
  const made = makePairs(fixed, labels, 7);

  it('are seeded: the same seed gives the same pairs, another seed other ones', () => {
    const again = makePairs(fixed, labels, 7, ['combined']);
    const combined = made.pairs.find((p) => p.name === 'combined')!;
    expect(again.draws).toEqual(made.draws);
    expect(again.pairs[0]!.moving.data).toEqual(combined.moving.data);
    expect(again.pairs[0]!.trueDisplacement.data).toEqual(combined.trueDisplacement.data);
    const other = makePairs(fixed, labels, 8, ['affine']);
    expect(other.draws.affine.rotationDeg).not.toEqual(made.draws.affine.rotationDeg);
  });

  it('draw transforms within the issue’s ranges', () => {
    const a = made.draws.affine;
    expect(Math.abs(a.rotationDeg[2])).toBeGreaterThanOrEqual(PAIR_PARAMS.rotationInPlaneDeg[0]);
    expect(Math.abs(a.rotationDeg[2])).toBeLessThanOrEqual(PAIR_PARAMS.rotationInPlaneDeg[1]);
    for (const r of a.rotationDeg.slice(0, 2)) expect(Math.abs(r)).toBeLessThanOrEqual(3);
    for (const s of a.scale) expect(Math.abs(s - 1)).toBeLessThanOrEqual(0.05);
    for (const s of a.shear) expect(Math.abs(s)).toBeLessThanOrEqual(0.03);
    expect(Math.hypot(...a.translationMm)).toBeLessThanOrEqual(10);
    expect(made.draws.bumpMaxMm).toBeLessThanOrEqual(PAIR_PARAMS.maxDisplacementMm + 1e-6);
    expect(made.draws.bumpMaxMm).toBeGreaterThan(5);
    expect(made.draws.bumpOrganMeanMm).toBeLessThanOrEqual(PAIR_PARAMS.organMeanMm + 1e-6);
    expect(made.draws.bumpOrganMeanMm).toBeGreaterThan(2);
    expect(made.pairs.map((p) => p.name)).toEqual(['affine', 'deformable', 'combined', 'modality']);
  });

  it('invert T exactly: T(T⁻¹(y)) = y', () => {
    for (const p of made.pairs) {
      expect(p.inverseResidualMm).toBeLessThan(1e-5);
      const inv = inverter(p.transform);
      const y: Vec3 = [12, -7, 9];
      const x: Vec3 = [0, 0, 0];
      inv(y, x);
      const back = applyTransform(p.transform, x, [0, 0, 0]);
      expect(Math.hypot(back[0] - y[0], back[1] - y[1], back[2] - y[2])).toBeLessThan(1e-5);
    }
  });

  it('sampling the moving image and labels through T_true reproduces the fixed ones (and the wrong way does not)', () => {
    for (const p of made.pairs) {
      const rt = roundTrip(p);
      expect(rt.voxels).toBeGreaterThan(5000);
      expect(rt.correlation, p.name).toBeGreaterThan(0.99);
      expect(rt.bandLimitedCorrelation, p.name).toBeGreaterThan(0.99);
      expect(rt.wrongDirectionCorrelation, p.name).toBeLessThan(rt.correlation - 0.01);
      for (const o of ORGANS) expect(rt.labelDice[o.name], `${p.name} ${o.name}`).toBeGreaterThan(0.9);
    }
  });

  it('have true fields without folding (finite differences and analytic)', () => {
    for (const p of made.pairs) {
      const j = jacobianStats(p.trueDisplacement);
      expect(j.foldingFraction, p.name).toBe(0);
      expect(j.minDet, p.name).toBeGreaterThan(0.3);
      if (p.transform.bumps.length > 0) {
        const analytic = minBumpJacobian(p.transform.bumps, GRID) * det3(p.transform.linear);
        expect(analytic).toBeGreaterThanOrEqual(PAIR_PARAMS.minJacobian * det3(p.transform.linear) - 1e-9);
        expect(Math.abs(j.minDet - analytic)).toBeLessThan(0.05);
      }
    }
  });

  it('remap the modality pair through a non-monotonic table', () => {
    // CT: air < fat < water < soft tissue; MR-like: air < water < soft tissue < fat.
    expect(remapIntensity(-1000)).toBeLessThan(remapIntensity(10));
    expect(remapIntensity(-80)).toBeGreaterThan(remapIntensity(50));
    expect(remapIntensity(50)).toBeGreaterThan(remapIntensity(10));
    const m = made.pairs.find((p) => p.name === 'modality')!;
    const c = made.pairs.find((p) => p.name === 'combined')!;
    expect(m.movingModality).toBe('MR-like');
    expect(m.trueDisplacement.data).toEqual(c.trueDisplacement.data);
    expect(m.movingLabels.data).toEqual(c.movingLabels.data);
  });

  it('write NIfTI files that read back on the same grid (displacement as an X×Y×Z×1×3 vector image)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regbench-test-'));
    try {
      const p = made.pairs.find((q) => q.name === 'deformable')!;
      const f = await writePair(p, dir);
      const moving = await readGridField(f.moving, [0], true);
      expect(moving.grid.dims).toEqual(GRID.dims);
      moving.grid.affine.forEach((v, i) => expect(v).toBeCloseTo(GRID.affine[i]!, 4));
      expect(moving.data).toEqual(p.moving.data);
      const lab = await readGridField(f.movingLabels, [0], true);
      expect(Uint8Array.from(lab.data)).toEqual(p.movingLabels.data);
      const u = await readGridField(f.trueDisplacement, [0, 1, 2], true);
      expect(u.data).toEqual(p.trueDisplacement.data);
      const hdr = gunzipSync(await readFile(f.trueDisplacement)).subarray(0, 348);
      const dv = new DataView(hdr.buffer, hdr.byteOffset, 348);
      expect([0, 1, 2, 3, 4, 5].map((i) => dv.getInt16(40 + 2 * i, true))).toEqual([5, 44, 48, 26, 1, 3]);
      expect(dv.getInt16(68, true)).toBe(1007);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('interpolate exactly at voxel centres (B-spline degree 3 and 5) and warp labels through a field', () => {
    const w2v = worldToVoxel(GRID);
    const x: Vec3 = [0, 0, 0];
    for (const degree of [3, 5] as const) {
      const c = splineCoefficients(fixed.data, GRID.dims, degree);
      for (const [i, j, k] of [
        [0, 0, 0],
        [10, 20, 13],
        [43, 47, 25],
      ] as const) {
        const p = i + GRID.dims[0] * (j + GRID.dims[1] * k);
        expect(sampleSpline(c, GRID, w2v, voxelToWorld(GRID, i, j, k, x), NaN, degree)).toBeCloseTo(
          fixed.data[p]!,
          2,
        );
      }
    }
    const n = labels.data.length;
    const zero = { grid: GRID, channels: 3, data: new Float32Array(3 * n) };
    expect(warpLabelsNearest(labels, zero)).toEqual(labels.data);
    // u = one voxel along i (world: the affine's first column): out(i) = labels(i + 1).
    const shift = new Float32Array(3 * n);
    for (let q = 0; q < n; q++) [0, 1, 2].forEach((r) => (shift[r * n + q] = GRID.affine[4 * r]!));
    const moved = warpLabelsNearest(labels, { grid: GRID, channels: 3, data: shift });
    const q = 10 + 44 * (20 + 48 * 13);
    expect(moved[q]).toBe(labels.data[q + 1]);
  });
});

describe('bench:register pairs on the shared CT', () => {
  it('reproduce the fixed CT through T_true (band-limited correlation > 0.99) with no folding', async () => {
    const ct = sharedPathOrSkip('data/totalsegmentator/example_ct_sm.nii.gz');
    if (!ct) return;
    const study = await loadStudy(join(ct, '..'));
    expect(study.fixed.grid.dims).toEqual([122, 101, 30]);
    const { pairs } = makePairs(study.fixed, study.labels, 16, ['deformable', 'modality']);
    for (const p of pairs) {
      const rt = roundTrip(p);
      expect(rt.bandLimitedCorrelation, p.name).toBeGreaterThan(0.99);
      expect(rt.correlation, p.name).toBeGreaterThan(0.97);
      for (const o of ORGANS) expect(rt.labelDice[o.name], `${p.name} ${o.name}`).toBeGreaterThan(0.97);
      expect(jacobianStats(p.trueDisplacement).foldingFraction).toBe(0);
    }
  });
});
