import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { SafetensorsFile, sharedPathOrSkip, toFloat32 } from '@curia/tensors';

import { parseSelection, preprocessAction } from './preprocess.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'curia-cli-pp-'));
  dirs.push(d);
  return d;
}

describe('curia preprocess', () => {
  it('writes the shared CT slices matching the reference within 1e-3', async () => {
    const input = sharedPathOrSkip('data/totalsegmentator/example_ct_sm.nii.gz');
    const refPath = sharedPathOrSkip('reference/preprocess/example_ct_sm.safetensors');
    const refJson = sharedPathOrSkip('reference/preprocess/example_ct_sm.json');
    if (!input || !refPath || !refJson) return;
    const picked = (JSON.parse(await readFile(refJson, 'utf8')) as { picked_slice_indices: number[] })
      .picked_slice_indices;
    const out = join(await tmp(), 'out.safetensors');
    const r = await preprocessAction(input, { slices: picked.join(','), out });
    expect(r.slices).toBe(picked.length);
    const got = toFloat32(await (await SafetensorsFile.open(out)).read('pixel_values'));
    const ref = toFloat32(await (await SafetensorsFile.open(refPath)).read('pixel_values'));
    expect(got.length).toBe(ref.length);
    let max = 0;
    for (let i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i]! - ref[i]!));
    expect(max).toBeLessThanOrEqual(1e-3);
  });

  it('throws one-line reasons on bad input', async () => {
    const d = await tmp();
    const text = join(d, 'notes.txt');
    await writeFile(text, 'not a volume\n');
    const out = join(d, 'o.safetensors');
    await expect(preprocessAction(join(d, 'missing.nii'), { out })).rejects.toThrow(/does not exist/);
    await expect(preprocessAction(text, { out })).rejects.toThrow(/not a supported volume/);
    expect(() => parseSelection({ slices: '1,x' })).toThrow(/--slices/);
    expect(() => parseSelection({ every: '0' })).toThrow(/--every/);
    expect(() => parseSelection({ every: '2', central: '3' })).toThrow(/only one/);
    expect(parseSelection({ central: '3' })).toEqual({ kind: 'central', count: 3 });
  });
});
