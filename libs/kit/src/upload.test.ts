import { describe, expect, it } from 'vitest';

import type { common } from '@curia/proto';

import { UploadAccumulator, UploadBufferPool } from './upload.js';

const SETTINGS = {
  maxBytesSetting: 'CURIA_PREPROCESS_MAX_UPLOAD_BYTES',
  maxFilesSetting: 'CURIA_PREPROCESS_MAX_UPLOAD_FILES',
};

const chunk = (fileName: string, bytes: number[], offset: number, lastChunk: boolean): common.FileChunk => ({
  fileName,
  data: new Uint8Array(bytes),
  offset,
  lastChunk,
});

describe('UploadAccumulator', () => {
  it('joins chunks per file and copies the bytes', () => {
    const acc = new UploadAccumulator({ maxBytes: 100, maxFiles: 2, ...SETTINGS });
    const first = chunk('a', [1, 2], 0, false);
    acc.add(first);
    first.data[0] = 99; // the accumulator must not alias message buffers
    acc.add(chunk('a', [3], 2, true));
    acc.add(chunk('b', [4], 0, true));
    const files = acc.finish();
    expect(files.map((f) => [f.name, [...f.data]])).toEqual([
      ['a', [1, 2, 3]],
      ['b', [4]],
    ]);
    expect(acc.bytesReceived).toBe(4);
  });

  it('copies each chunk once into a buffer sized from the announcement, or grown and trimmed', () => {
    const bytes = Array.from({ length: 1000 }, (_, i) => i & 0xff);
    const send = (acc: UploadAccumulator, size: number): Uint8Array => {
      for (let o = 0; o < size; o += 64)
        acc.add(chunk('v.nii', bytes.slice(o, Math.min(size, o + 64)), o, o + 64 >= size));
      return acc.finish()[0]!.data;
    };
    for (const announced of [1000, 0, 4000]) {
      const acc = new UploadAccumulator({ maxBytes: 10_000, maxFiles: 2, ...SETTINGS });
      acc.checkAnnounced({ fileCount: 1, totalBytes: announced });
      const data = send(acc, 1000);
      expect([...data]).toEqual(bytes);
      // Exact when announced; otherwise grown by doubling, and trimmed when mostly unused.
      expect(data.buffer.byteLength, `announced ${announced}`).toBeLessThanOrEqual(1250);
    }
  });

  it('reuses pooled upload buffers between calls and exposes only the bytes each call received', () => {
    const pool = new UploadBufferPool(3000);
    const upload = (size: number, fill: number): { data: Uint8Array; acc: UploadAccumulator } => {
      const acc = new UploadAccumulator({ maxBytes: 10_000, maxFiles: 2, ...SETTINGS }, pool);
      acc.checkAnnounced({ fileCount: 1, totalBytes: size });
      for (let o = 0; o < size; o += 100) {
        acc.add(chunk('v.nii', new Array<number>(Math.min(100, size - o)).fill(fill), o, o + 100 >= size));
      }
      return { data: acc.finish()[0]!.data, acc };
    };
    const first = upload(1000, 1);
    first.acc.recycle();
    first.acc.recycle(); // once only
    expect(pool.heldBytes).toBe(1000);
    const second = upload(900, 2); // fits the kept 1000-byte buffer (within 5/4)
    expect(second.data.buffer).toBe(first.data.buffer);
    expect(pool.heldBytes).toBe(0);
    expect(second.data.length).toBe(900);
    expect(second.data.every((b) => b === 2)).toBe(true); // none of the first upload's bytes
    second.acc.recycle();
    expect(upload(500, 3).data.buffer).not.toBe(first.data.buffer); // too large a buffer for 500
  });

  it('bounds the pool in bytes, evicting the oldest buffers', () => {
    const pool = new UploadBufferPool(2500);
    const [a, b, c] = [new Uint8Array(1000), new Uint8Array(1000), new Uint8Array(1000)];
    pool.give(a);
    pool.give(b);
    pool.give(c);
    expect(pool.heldBytes).toBe(2000);
    pool.give(new Uint8Array(3000)); // larger than the whole pool: not kept
    expect(pool.heldBytes).toBe(2000);
    expect(pool.take(1000)).toBe(b); // a was evicted for c
    expect(pool.take(1000)).toBe(c);
    expect(pool.take(1000)).not.toBe(a);
  });

  it('enforces caps as soon as they are exceeded and the FileChunk rules', () => {
    const bytes = new UploadAccumulator({ maxBytes: 3, maxFiles: 5, ...SETTINGS });
    bytes.add(chunk('a', [1, 2, 3], 0, false));
    expect(() => bytes.add(chunk('a', [4], 3, true))).toThrow(/CURIA_PREPROCESS_MAX_UPLOAD_BYTES/);
    const files = new UploadAccumulator({ maxBytes: 100, maxFiles: 1, ...SETTINGS });
    files.add(chunk('a', [1], 0, true));
    expect(() => files.add(chunk('b', [1], 0, true))).toThrow(/CURIA_PREPROCESS_MAX_UPLOAD_FILES/);
    const reuse = new UploadAccumulator({ maxBytes: 100, maxFiles: 5, ...SETTINGS });
    reuse.add(chunk('a', [1], 0, true));
    expect(() => reuse.add(chunk('a', [1], 0, true))).toThrow(/reuses/);
    expect(() =>
      new UploadAccumulator({ maxBytes: 9, maxFiles: 5, ...SETTINGS }).add(chunk('../x', [1], 0, true)),
    ).toThrow(/base name/);
    const open = new UploadAccumulator({ maxBytes: 100, maxFiles: 5, ...SETTINGS });
    open.add(chunk('a', [1], 0, false));
    expect(() => open.finish()).toThrow(/last_chunk/);
    expect(() =>
      new UploadAccumulator({ maxBytes: 10, maxFiles: 5, ...SETTINGS }).checkAnnounced({
        fileCount: 1,
        totalBytes: 11,
      }),
    ).toThrow(/total_bytes/);
  });
});
