import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { SafetensorsFile, toFloat32 } from '@curia/tensors';

import { int16Bytes, writeNifti } from '../nifti/nifti-writer.js';
import { openVolume, type Volume } from '../volume.js';
import { preprocessSlices, preprocessToTensor, writePreprocessed } from './preprocess.js';
import { resolveSelection } from './selection.js';
import { CURIA_DEFAULT_PREPROCESS_SPEC } from './spec.js';
import { countingVolume } from '../testing/counting-volume.js';

const DIMS = [24, 20, 10];
const AFFINE = [1.5, 0, 0, 0, 0, 1.5, 0, 0, 0, 0, 3, 0, 0, 0, 0, 1];

async function smallVolume(): Promise<Volume> {
  const n = DIMS[0]! * DIMS[1]! * DIMS[2]!;
  const values = Array.from({ length: n }, (_, i) => ((i * 7919) % 2000) - 1100);
  const data = writeNifti({
    dims: DIMS,
    datatypeCode: 4,
    bitpix: 16,
    voxelBytes: int16Bytes(values),
    affine: AFFINE,
  });
  return openVolume({ kind: 'bytes', data });
}

describe('preprocessSlices', () => {
  it('stops computing slices once the signal aborts', async () => {
    const { volume, reads } = countingVolume(await smallVolume());
    const ac = new AbortController();
    const it = preprocessSlices(volume, { signal: ac.signal });
    const first = await it.next();
    expect(first.done).toBe(false);
    ac.abort();
    await expect(it.next()).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(reads()).toBe(1);
    expect((await it.next()).done).toBe(true);
  });

  it('z-scores every slice (mean 0, unbiased std 1) and reports raw stats', async () => {
    const v = await smallVolume();
    const raw = await v.readCanonicalSlice(4);
    for await (const s of preprocessSlices(v, { selection: { kind: 'indices', indices: [4] } })) {
      let sum = 0;
      for (const x of s.pixels) sum += x;
      const mean = sum / s.pixels.length;
      let ss = 0;
      for (const x of s.pixels) ss += (x - mean) ** 2;
      expect(Math.abs(mean)).toBeLessThan(1e-5);
      expect(Math.sqrt(ss / (s.pixels.length - 1))).toBeCloseTo(1, 4);
      expect(s.rawStats.min).toBe(raw.reduce((a, b) => Math.min(a, b)));
      expect(s.rawStats.max).toBe(raw.reduce((a, b) => Math.max(a, b)));
    }
  });

  it('a constant slice (std 0) is only centred', async () => {
    const data = writeNifti({
      dims: [5, 4, 2],
      datatypeCode: 4,
      bitpix: 16,
      voxelBytes: int16Bytes(new Array(40).fill(7)),
      affine: AFFINE,
    });
    const v = await openVolume({ kind: 'bytes', data });
    for await (const s of preprocessSlices(v, { selection: { kind: 'all' } })) {
      let worst = 0;
      for (const x of s.pixels) worst = Math.max(worst, Math.abs(x));
      expect(worst).toBeLessThan(1e-6);
    }
  });

  it('rejects bad specs and selections with precise errors', async () => {
    const v = await smallVolume();
    const spec = { ...CURIA_DEFAULT_PREPROCESS_SPEC, targetSize: [0, 512] as const };
    await expect(preprocessSlices(v, { spec }).next()).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('targetSize[0] is 0') as unknown,
    });
    await expect(
      preprocessSlices(v, { selection: { kind: 'indices', indices: [10] } }).next(),
    ).rejects.toMatchObject({
      code: 'OUT_OF_RANGE',
      message: expect.stringContaining('selection index 10 is outside 0..9') as unknown,
    });
  });
});

describe('resolveSelection', () => {
  it('resolves all / every / central / indices', () => {
    expect(resolveSelection(undefined, 4)).toEqual([0, 1, 2, 3]);
    expect(resolveSelection({ kind: 'every', step: 3 }, 10)).toEqual([0, 3, 6, 9]);
    expect(resolveSelection({ kind: 'every', step: 4, offset: 1 }, 10)).toEqual([1, 5, 9]);
    expect(resolveSelection({ kind: 'central', count: 3 }, 10)).toEqual([3, 4, 5]);
    expect(resolveSelection({ kind: 'central', count: 20 }, 4)).toEqual([0, 1, 2, 3]);
    expect(resolveSelection({ kind: 'indices', indices: [5, 1] }, 10)).toEqual([5, 1]);
    expect(() => resolveSelection({ kind: 'every', step: 0 }, 10)).toThrow(/step is 0/);
    const union = {
      kind: 'union',
      parts: [
        { kind: 'central', count: 2 },
        { kind: 'indices', indices: [9, 4] },
        { kind: 'every', step: 5 },
      ],
    } as const;
    expect(resolveSelection(union, 10)).toEqual([0, 4, 5, 9]);
    expect(() => resolveSelection({ kind: 'union', parts: [] }, 10)).toThrow(/parts is empty/);
    expect(() => resolveSelection({ kind: 'union', parts: [union] }, 10)).toThrow(/another union/);
  });
});

describe('preprocessToTensor / writePreprocessed', () => {
  it('refuses an output tensor above maxVoxelBytes before allocating it', async () => {
    const v = await smallVolume();
    await expect(
      preprocessToTensor(v, { limits: { maxVoxelBytes: 512 * 512 * 4 * 5 } }),
    ).rejects.toMatchObject({
      code: 'RESOURCE_EXHAUSTED',
      message: expect.stringContaining('output tensor of 10 slices x 512x512 float32') as unknown,
    });
  });

  it('writes pixel_values (k,1,H,W) with slice_indices and geometry metadata', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'curia-pre-'));
    try {
      const v = await smallVolume();
      const spec = { ...CURIA_DEFAULT_PREPROCESS_SPEC, targetSize: [64, 48] as const };
      const res = await preprocessToTensor(v, { spec, selection: { kind: 'every', step: 4 } });
      expect(res.shape).toEqual([3, 1, 64, 48]);
      expect(res.indices).toEqual([0, 4, 8]);
      const path = join(dir, 'out.safetensors');
      await writePreprocessed(path, res);
      const f = await SafetensorsFile.open(path);
      const t = await f.read('pixel_values');
      expect(t.shape).toEqual([3, 1, 64, 48]);
      expect(t.dtype).toBe('F32');
      const back = toFloat32(t);
      let bad = 0;
      for (let i = 0; i < back.length; i++) if (back[i] !== res.pixelValues[i]) bad++;
      expect(bad).toBe(0);
      expect(JSON.parse(f.header.metadata.slice_indices!)).toEqual([0, 4, 8]);
      const g = JSON.parse(f.header.metadata.geometry!) as { canonicalDims: number[]; inputFrame: string };
      expect(g.canonicalDims).toEqual([10, 20, 24]);
      expect(g.inputFrame).toBe('RAS');
    } finally {
      await rm(dir, { recursive: true });
    }
  });
});
