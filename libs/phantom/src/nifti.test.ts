import { describe, expect, it } from 'vitest';

import { openVolume } from '@curia/volume';

import { generatePhantom } from './generate.js';
import { labelTableJson, phantomToNifti } from './nifti.js';
import { phantomDisplaySlice } from './slices.js';

const SMALL = { size: [64, 48, 12] as const, spacing: [6.4, 6.4, 12] as const };

describe('phantomToNifti', () => {
  it.each([
    ['LPS', true],
    ['RAS', false],
  ] as const)('round-trips through openVolume (%s, gzip %s)', async (orientation, gzip) => {
    const p = generatePhantom({ ...SMALL, orientation, seed: 5 });
    const nii = phantomToNifti(p, { gzip });
    expect(nii.image[0] === 0x1f && nii.image[1] === 0x8b).toBe(gzip);
    const img = await openVolume({ kind: 'bytes', data: nii.image });
    const lab = await openVolume({ kind: 'bytes', data: nii.labels });
    for (const [vol, type] of [
      [img, 'int16'],
      [lab, 'uint8'],
    ] as const) {
      expect(vol.voxelType).toBe(type);
      const g = vol.geometry;
      expect(g.inputDims).toEqual([...p.dims]);
      expect(g.inputAxcodes).toBe(orientation);
      g.inputAffine.forEach((v, i) => expect(v).toBeCloseTo(p.affine[i]!, 4));
      g.inputSpacing.forEach((v, i) => expect(v).toBeCloseTo(p.spacing[i]!, 5));
    }
    // Canonical slices (rows -> P, cols -> L, inferior first) equal the phantom's display slices.
    expect(img.sliceCount).toBe(p.dims[2]);
    for (let k = 0; k < p.dims[2]; k++) {
      const want = phantomDisplaySlice(p, k);
      const got = await img.readCanonicalSlice(k);
      const gotLab = await lab.readCanonicalSlice(k);
      expect(Array.from(got)).toEqual(Array.from(want.values));
      expect(Array.from(gotLab)).toEqual(Array.from(want.labels ?? []));
    }
  });

  it('writes the label table in the TotalSegmentator labels_total.json format', () => {
    const p = generatePhantom({ ...SMALL });
    const table = JSON.parse(labelTableJson(p.labelNames)) as Record<string, string>;
    expect(table['1']).toBe('spleen');
    expect(table['5']).toBe('liver');
    expect(table['0']).toBeUndefined();
    expect(Object.keys(table)).toHaveLength(p.labelNames.length - 1);
  });
});
