import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { SafetensorsFile, sharedPathOrSkip, toFloat32 } from '@curia/tensors';

import { openVolume, type VolumeSource } from '../volume.js';
import { preprocessSlices } from './preprocess.js';
import { CURIA_DEFAULT_PREPROCESS_SPEC } from './spec.js';

interface RefJson {
  num_slices: number;
  slice_shape_before_resize: [number, number];
  picked_slice_indices: number[];
  input_axcodes: string;
  clip_below_air: boolean;
  raw_slice_stats: { index: number; min: number; max: number; mean: number }[];
}

/** Deterministic shuffle (the series must not depend on file order). */
function shuffled<T>(xs: T[], seed: number): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

async function sourceFor(caseName: string): Promise<VolumeSource | null> {
  if (caseName === 'example_ct_dicom') {
    const dir = sharedPathOrSkip('data/totalsegmentator/example_ct_dicom');
    if (!dir) return null;
    const names = shuffled((await readdir(dir)).sort(), 7);
    const files = await Promise.all(
      names.map(async (name) => ({ name, data: await readFile(join(dir, name)) })),
    );
    return { kind: 'files', files };
  }
  const file = caseName.startsWith('example_ct_sm') ? 'example_ct_sm.nii.gz' : `${caseName}.nii.gz`;
  const path = sharedPathOrSkip(`data/totalsegmentator/${file}`);
  return path ? { kind: 'bytes', data: await readFile(path) } : null;
}

describe('parity with shared/reference/preprocess', () => {
  for (const caseName of ['example_ct_sm', 'example_ct_sm_clip', 'example_mr_sm', 'example_ct_dicom']) {
    it(`${caseName}: pixel_values within 1e-3 and raw stats match`, async () => {
      const refPath = sharedPathOrSkip(`reference/preprocess/${caseName}.safetensors`);
      const jsonPath = sharedPathOrSkip(`reference/preprocess/${caseName}.json`);
      const source = await sourceFor(caseName);
      if (!refPath || !jsonPath || !source) return;
      const ref = JSON.parse(await readFile(jsonPath, 'utf8')) as RefJson;
      const expected = toFloat32(await (await SafetensorsFile.open(refPath)).read('pixel_values'));

      const volume = await openVolume(source);
      expect(volume.sliceCount).toBe(ref.num_slices);
      expect(volume.geometry.canonicalDims.slice(1)).toEqual(ref.slice_shape_before_resize);
      if (volume.info.format === 'nifti') expect(volume.geometry.inputAxcodes).toBe(ref.input_axcodes);

      const spec = { ...CURIA_DEFAULT_PREPROCESS_SPEC, clipBelowAir: ref.clip_below_air };
      const n = 512 * 512;
      let worst = 0;
      let row = 0;
      for await (const s of preprocessSlices(volume, {
        spec,
        selection: { kind: 'indices', indices: ref.picked_slice_indices },
      })) {
        const exp = expected.subarray(row * n, (row + 1) * n);
        for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(s.pixels[i]! - exp[i]!));
        const st = ref.raw_slice_stats[row]!;
        expect(st.index).toBe(s.canonicalIndex);
        expect(s.rawStats.min).toBe(st.min);
        expect(s.rawStats.max).toBe(st.max);
        expect(Math.abs(s.rawStats.mean - st.mean)).toBeLessThan(1e-6 * Math.max(1, Math.abs(st.mean)));
        row++;
      }
      expect(row).toBe(ref.picked_slice_indices.length);
      console.log(`${caseName}: max |diff| = ${worst.toExponential(3)} over ${row} slices`);
      expect(worst).toBeLessThanOrEqual(1e-3);
    });
  }
});
