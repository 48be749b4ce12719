import { afterAll, describe, expect, it } from 'vitest';

import { gatherSlice } from '../io/slice-gather.js';
import { int16Bytes, writeNifti } from '../nifti/nifti-writer.js';
import { openVolume, type Volume } from '../volume.js';
import { float32ToFloat16 } from '@curia/tensors';

import {
  preprocessSlices,
  preprocessSlicesOnPool,
  type PooledPreprocessedSlice,
  type PreprocessedSlice,
} from './preprocess.js';
import { SlicePool } from './slice-pool.js';
import { CURIA_DEFAULT_PREPROCESS_SPEC } from './spec.js';
import { countingVolume } from '../testing/counting-volume.js';

const DIMS = [40, 33, 12];

/** A NIfTI volume: axial (canonical slices are input planes) unless `sagittal`. */
async function volume(sagittal = false): Promise<Volume> {
  const n = DIMS[0]! * DIMS[1]! * DIMS[2]!;
  const values = Array.from({ length: n }, (_, i) => ((i * 7919) % 2400) - 1200);
  const data = writeNifti({
    dims: DIMS,
    datatypeCode: 4,
    bitpix: 16,
    voxelBytes: int16Bytes(values),
    // Sagittal: the input's k axis runs left-right, so each canonical slice cuts across planes.
    affine: sagittal
      ? [0, 0, -2.5, 0, 0.9, 0, 0, 0, 0, 1.1, 0, 0, 0, 0, 0, 1]
      : [-0.9, 0, 0, 0, 0, 1.1, 0, 0, 0, 0, 2.5, 0, 0, 0, 0, 1],
  });
  return openVolume({ kind: 'bytes', data });
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const s of it) out.push(s);
  return out;
}

const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

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
    const want: PreprocessedSlice[] = await collect(preprocessSlices(v, { spec, selection }));
    for (const prefetch of [1, 3, 8]) {
      const got = await collect(preprocessSlicesOnPool(v, pool, { spec, selection, prefetch }));
      expect(got.map((s) => s.canonicalIndex)).toEqual(want.map((s) => s.canonicalIndex));
      got.forEach((s, i) => {
        const w = want[i]!;
        expect(s.inputSliceIndex).toBe(w.inputSliceIndex);
        expect(s.stats).toEqual(w.stats);
        expect(s.rawStats).toEqual(w.rawStats);
        expect(s.dtype).toBe('F32');
        expect(bytesOf(s.data).equals(bytesOf(w.pixels))).toBe(true);
      });
    }
  });

  it('reads input planes where the volume has them (gathered on the thread) and raw slices elsewhere', async () => {
    for (const sagittal of [false, true]) {
      const v = await volume(sagittal);
      const plane = await v.readCanonicalPlane?.(1);
      expect(plane === null, `sagittal ${sagittal}`).toBe(sagittal);
      if (plane && 'voxels' in plane) {
        const [rows, cols] = [v.geometry.canonicalDims[1], v.geometry.canonicalDims[2]];
        const raw = new Float64Array(rows * cols);
        gatherSlice(plane.voxels, plane.walk, rows, cols, plane.slope, plane.inter, raw);
        expect(bytesOf(raw).equals(bytesOf(await v.readCanonicalSlice(1)))).toBe(true);
        expect(plane.voxels.byteLength).toBe(plane.voxels.buffer.byteLength); // transferable as is
        const again = await v.readCanonicalPlane!(2, plane.voxels);
        expect(again && 'voxels' in again && again.voxels).toBe(plane.voxels); // reused
      }
      const want: PreprocessedSlice[] = await collect(preprocessSlices(v));
      const got = await collect(preprocessSlicesOnPool(v, pool, { prefetch: 3 }));
      got.forEach((s, i) => expect(bytesOf(s.data).equals(bytesOf(want[i]!.pixels))).toBe(true));
      expect(got).toHaveLength(want.length);
    }
  });

  it('lays values out with the requested room around them, and converts F16 on the thread', async () => {
    const v = await volume();
    const spec = { ...CURIA_DEFAULT_PREPROCESS_SPEC, targetSize: [64, 48] as [number, number] };
    const want: PreprocessedSlice[] = await collect(preprocessSlices(v, { spec }));
    const layout = { headroom: 13, tailroom: 7 };
    const f32 = await collect(preprocessSlicesOnPool(v, pool, { spec, layout }));
    const f16 = await collect(preprocessSlicesOnPool(v, pool, { spec, layout: { ...layout, dtype: 'F16' } }));
    f32.forEach((s, i) => {
      expect(s.data.byteOffset).toBe(16); // 13 rounded up to a multiple of 8
      expect(s.data.buffer.byteLength).toBe(16 + 64 * 48 * 4 + 7);
      expect(bytesOf(s.data).equals(bytesOf(want[i]!.pixels))).toBe(true);
    });
    f16.forEach((s, i) => {
      expect(s.dtype).toBe('F16');
      expect(s.data.byteLength).toBe(64 * 48 * 2);
      expect(bytesOf(s.data).equals(bytesOf(float32ToFloat16(want[i]!.pixels)))).toBe(true);
    });
  });

  it('reuses released output buffers and leaves unreleased ones to the consumer', async () => {
    const v = await volume();
    const kept = await collect(preprocessSlicesOnPool(v, pool, { prefetch: 1 }));
    expect(kept.every((s) => s.data.byteLength === 512 * 512 * 4)).toBe(true);
    const seen: PooledPreprocessedSlice[] = [];
    for await (const s of preprocessSlicesOnPool(v, pool, { prefetch: 1 })) {
      expect(bytesOf(s.data).equals(bytesOf(kept[seen.length]!.data))).toBe(true);
      s.release();
      s.release(); // idempotent: a buffer is never handed out twice
      seen.push(s);
    }
    // A released buffer went back to a pool thread for a later slice (and was detached here).
    expect(seen.slice(0, -2).every((s) => s.data.byteLength === 0)).toBe(true);
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
    const out = { buffer: new ArrayBuffer(512 * 512 * 4), byteOffset: 0, dtype: 'F32' as const };
    await expect(
      p.process({ kind: 'raw', raw: new Float64Array(4) }, 2, 2, CURIA_DEFAULT_PREPROCESS_SPEC, out),
    ).rejects.toMatchObject({
      code: 'UNAVAILABLE',
    });
  });

  it('refuses an output buffer that cannot hold the aligned values', async () => {
    const spec = CURIA_DEFAULT_PREPROCESS_SPEC;
    const small = { buffer: new ArrayBuffer(100), byteOffset: 0, dtype: 'F32' as const };
    await expect(
      pool.process({ kind: 'raw', raw: new Float64Array(4) }, 2, 2, spec, small),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    const odd = { buffer: new ArrayBuffer(512 * 512 * 4 + 8), byteOffset: 2, dtype: 'F32' as const };
    await expect(
      pool.process({ kind: 'raw', raw: new Float64Array(4) }, 2, 2, spec, odd),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
  });
});
