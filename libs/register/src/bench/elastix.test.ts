import { describe, expect, it } from 'vitest';

import { elastixParameters, formatParameters, onPath, setParameter } from './elastix.js';
import { runMeasured } from './registrar.js';

describe('bench:register elastix and process measurement', () => {
  it('writes elastix parameter files: affine then B-spline, Mattes MI, 12 mm final grid, seeded', () => {
    const p = elastixParameters(16);
    const a = formatParameters(p.affine);
    const b = formatParameters(p.bspline);
    expect(a).toContain('(Transform "AffineTransform")');
    expect(a).toContain('(Metric "AdvancedMattesMutualInformation")');
    expect(a).toContain('(RandomSeed 16)');
    expect(a).toContain('(ResultImageFormat "nii")');
    expect(a).toContain('(UseDirectionCosines "true")');
    expect(b).toContain('(Transform "BSplineTransform")');
    expect(b).toContain('(FinalGridSpacingInPhysicalUnits 12)');
    expect(b).toContain('(GridSpacingSchedule 4 2 1)');
    expect(b.split('\n').every((l) => l === '' || /^\(\w+ .+\)$/.test(l))).toBe(true);
  });

  it('sets a parameter in a transform file, replacing it or appending it', () => {
    const text =
      '(Transform "BSplineTransform")\n(FinalBSplineInterpolationOrder 3)\n(ResultImagePixelType "float")\n';
    let t = setParameter(text, 'FinalBSplineInterpolationOrder', 0);
    t = setParameter(t, 'ResultImagePixelType', 'unsigned char');
    t = setParameter(t, 'WriteResultImage', 'true');
    expect(t).toBe(
      '(Transform "BSplineTransform")\n(FinalBSplineInterpolationOrder 0)\n(ResultImagePixelType "unsigned char")\n(WriteResultImage "true")\n',
    );
  });

  it('finds executables on PATH', () => {
    expect(onPath('node')).toMatch(/node$/);
    expect(onPath('surely-no-such-tool-here')).toBeNull();
  });

  it('measures a child process: wall time, peak RSS (a 300 MB allocation shows), exit code', async () => {
    const script =
      'const b = Buffer.alloc(300 * 2 ** 20, 1); setTimeout(() => process.exit(b[5] === 1 ? 3 : 4), 300);';
    const r = await runMeasured(process.execPath, ['-e', script]);
    expect(r.code).toBe(3);
    expect(r.wallMs).toBeGreaterThan(250);
    if (process.platform === 'linux') expect(r.peakRssBytes).toBeGreaterThan(300 * 2 ** 20);
  });
});
