import { describe, expect, it } from 'vitest';

import { collectRegistration, common, register, type RegistrationResult } from '@curia/client';

import { checkerboard } from './checkerboard.js';
import { meanDice, pairLabels, parseLabelSpec, registerOptionsOf, transformJson } from './register.js';

/** What collectRegistration makes of a stream holding only `transform`. */
const result = (m: number[], frame: common.CoordinateFrame): Promise<RegistrationResult> =>
  collectRegistration(
    // eslint-disable-next-line @typescript-eslint/require-await -- a one-message response stream
    (async function* () {
      yield { msg: { $case: 'transform' as const, value: { fixedToMoving: { m, frame } } } };
    })(),
  );

describe('curia register options', () => {
  it('names label maps NAME=PATH, or after their file', () => {
    expect(parseLabelSpec('organs=/d/seg.nii.gz', '--moving-labels')).toEqual({
      name: 'organs',
      path: '/d/seg.nii.gz',
    });
    expect(parseLabelSpec('/d/my seg.v2.nii.gz', '--moving-labels')).toEqual({
      name: 'my_seg_v2',
      path: '/d/my seg.v2.nii.gz',
    });
    // Not a name before '=': the whole string is a path.
    expect(parseLabelSpec('/d/a=b.nii', '--fixed-labels')).toEqual({ name: 'a_b', path: '/d/a=b.nii' });
    expect(() => parseLabelSpec('organs=', '--fixed-labels')).toThrow(
      "--fixed-labels 'organs=': expected NAME=PATH",
    );
  });

  it('pairs fixed label maps with moving ones by name and refuses clashes', () => {
    expect(pairLabels(['organs=m.nii.gz', 'v.nii.gz'], ['organs=f.nii.gz'])).toEqual({
      moving: [
        { name: 'organs', path: 'm.nii.gz' },
        { name: 'v', path: 'v.nii.gz' },
      ],
      fixed: [{ name: 'organs', path: 'f.nii.gz' }],
    });
    expect(() => pairLabels(['a=m.nii.gz'], ['b=f.nii.gz'])).toThrow(
      "--fixed-labels 'f.nii.gz' is named 'b', but no --moving-labels has that name (moving label maps: 'a')",
    );
    expect(() => pairLabels(['x/seg.nii.gz', 'y/seg.nii.gz'], [])).toThrow(
      "--moving-labels: two label maps are named 'seg'",
    );
    expect(() => pairLabels(['moving.nii.gz'], [])).toThrow("the name 'moving' is reserved");
  });

  it('asks for every output as files, the transform in LPS; checks the choices', () => {
    const o = registerOptionsOf({
      fixed: 'f',
      moving: 'm',
      outDir: 'o',
      features: 'Hybrid',
      transform: 'affine',
      workingSpacing: '2.5',
      inverse: true,
    });
    expect(o).toMatchObject({
      features: register.FeatureSet.HYBRID,
      transform: register.TransformModel.AFFINE,
      workingSpacingMm: 2.5,
      returnDisplacement: true,
      displacementFormat: register.DisplacementFormat.NIFTI,
      returnInverse: true,
      returnWarpedImage: true,
      warpedFormat: register.WarpedFormat.NIFTI,
      frame: common.CoordinateFrame.LPS,
    });
    expect(registerOptionsOf({ fixed: 'f', moving: 'm', outDir: 'o' })).toMatchObject({
      features: register.FeatureSet.UNSPECIFIED,
      transform: register.TransformModel.UNSPECIFIED,
      workingSpacingMm: 0,
      returnInverse: false,
    });
    expect(() => registerOptionsOf({ fixed: 'f', moving: 'm', outDir: 'o', features: 'sift' })).toThrow(
      "--features must be one of mind, curia, hybrid, got 'sift'",
    );
    expect(() => registerOptionsOf({ fixed: 'f', moving: 'm', outDir: 'o', workingSpacing: '0' })).toThrow(
      "--working-spacing must be a number of mm > 0, got '0'",
    );
  });
});

describe('curia register outputs', () => {
  it('states the affine in LPS and RAS, whichever frame the service used', async () => {
    const lps = [0.9, -0.1, 0.02, 5, 0.1, 0.9, -0.03, -4, 0.01, 0.04, 1.1, 3, 0, 0, 0, 1];
    // RAS = F·A·F, F = diag(-1, -1, 1, 1).
    const ras = [0.9, -0.1, -0.02, -5, 0.1, 0.9, 0.03, 4, -0.01, -0.04, 1.1, 3, 0, 0, 0, 1];
    for (const r of [
      await result(lps, common.CoordinateFrame.LPS),
      await result(ras, common.CoordinateFrame.RAS),
    ]) {
      const j = transformJson(r) as { lps: { matrix: number[][] }; ras: { matrix: number[][] } };
      j.lps.matrix.flat().forEach((v, i) => expect(v).toBeCloseTo(lps[i]!, 12));
      j.ras.matrix.flat().forEach((v, i) => expect(v).toBeCloseTo(ras[i]!, 12));
    }
    const empty = await result([], common.CoordinateFrame.LPS);
    expect(() => transformJson(empty)).toThrow('no fixed_to_moving affine');
  });

  it('averages Dice per label map name', () => {
    const o = (label: string, diceBefore: number, diceAfter: number): register.LabelOverlap => ({
      label,
      value: 1,
      diceBefore,
      diceAfter,
      fixedVoxels: 10,
    });
    expect(meanDice([o('a', 0.5, 0.9), o('a', 0.7, 0.7), o('b', 0.2, 0.4)])).toEqual({
      a: { before: 0.6, after: 0.8, values: 2 },
      b: { before: 0.2, after: 0.4, values: 1 },
    });
  });

  it('interleaves two slices in tiles, each through its own window', () => {
    const a = { width: 4, height: 2, values: new Float32Array(8).fill(100) };
    const b = { width: 4, height: 2, values: new Float32Array(8).fill(-5) };
    const c = checkerboard(a, b, { a: [0, 200], b: [-10, 0] }, 2);
    expect(Array.from(c.values)).toEqual([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
    const d = checkerboard(a, b, { a: [0, 100], b: [0, 10] }, 2);
    expect(Array.from(d.values)).toEqual([1, 1, 0, 0, 1, 1, 0, 0]);
    expect(() => checkerboard(a, { ...b, width: 2, height: 4 }, { a: [0, 1], b: [0, 1] })).toThrow(
      'checkerboard of a 4x2 and a 2x4 slice',
    );
  });
});
