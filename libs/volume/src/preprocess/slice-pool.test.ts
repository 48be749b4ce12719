import { afterAll, describe, expect, it } from 'vitest';

import { int16Bytes, writeNifti } from '../nifti/nifti-writer.js';
import { openVolume, type Volume } from '../volume.js';
import { preprocessSlices, preprocessSlicesOnPool, type PreprocessedSlice } from './preprocess.js';
import { SlicePool } from './slice-pool.js';
import { CURIA_DEFAULT_PREPROCESS_SPEC } from './spec.js';
import { countingVolume } from '../testing/counting-volume.js';

const DIMS = [40, 33, 12];

async function volume(): Promise<Volume> {
  const n = DIMS[0]! * DIMS[1]! * DIMS[2]!;
  const values = Array.from({ length: n }, (_, i) => ((i * 7919) % 2400) - 1200);
  const data = writeNifti({
    dims: DIMS,
    datatypeCode: 4,
    bitpix: 16,
    voxelBytes: int16Bytes(values),
    affine: [0.9, 0, 0, 0, 0, 1.1, 0, 0, 0, 0, 2.5, 0, 0, 0, 0, 1],
  });
  return openVolume({ kind: 'bytes', data });
}

async function collect(it: AsyncIterable<PreprocessedSlice>): Promise<PreprocessedSlice[]> {
  const out: PreprocessedSlice[] = [];
  for await (const s of it) out.push(s);
  return out;
}

describe('preprocessSlicesOnPool', () => {
  const pool = new SlicePool(2);
  afterAll(() => pool.close());

  it('yields the same slices, in order, bit for bit, as the in-thread engine', async () => {
    const v = await volume();
    const spec = {
      ...CURIA_DEFAULT_PREPROCESS_SPEC,
      targetSize: [64, 48] as [number, number],
      clipBelowAir: true,
    };
    const selection = { kind: 'indices' as const, indices: [7, 0, 11, 3, 3] };
    const want = await collect(preprocessSlices(v, { spec, selection }));
    for (const prefetch of [1, 3, 8]) {
      const got = await collect(preprocessSlicesOnPool(v, pool, { spec, selection, prefetch }));
      expect(got.map((s) => s.canonicalIndex)).toEqual(want.map((s) => s.canonicalIndex));
      got.forEach((s, i) => {
        const w = want[i]!;
        expect(s.inputSliceIndex).toBe(w.inputSliceIndex);
        expect(s.stats).toEqual(w.stats);
        expect(s.rawStats).toEqual(w.rawStats);
        expect(Buffer.from(s.pixels.buffer).equals(Buffer.from(w.pixels.buffer))).toBe(true);
      });
    }
  });

  it('stops reading slices once the signal aborts, and closing early leaves the pool usable', async () => {
    const v = await volume();
    const { volume: counted, reads } = countingVolume(v);
    const ac = new AbortController();
    const it = preprocessSlicesOnPool(counted, pool, { signal: ac.signal, prefetch: 2 });
    expect((await it.next()).done).toBe(false);
    ac.abort();
    await expect(it.next()).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(reads()).toBeLessThanOrEqual(3);
    const early = preprocessSlicesOnPool(v, pool, { prefetch: 4 });
    await early.next();
    await early.return();
    expect((await collect(preprocessSlicesOnPool(v, pool))).length).toBe(DIMS[2]);
  });

  it('fails tasks with UNAVAILABLE once closed', async () => {
    const p = new SlicePool(1);
    await p.close();
    await expect(p.process(new Float64Array(4), 2, 2, CURIA_DEFAULT_PREPROCESS_SPEC)).rejects.toMatchObject({
      code: 'UNAVAILABLE',
    });
  });
});
