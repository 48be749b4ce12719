import { describe, expect, it } from 'vitest';

import { common } from '@curia/proto';

import { sliceSelection, outputDType, checkStudyId } from './options.js';
import { UploadAccumulator } from './upload.js';

const chunk = (fileName: string, bytes: number[], offset: number, lastChunk: boolean): common.FileChunk => ({
  fileName,
  data: new Uint8Array(bytes),
  offset,
  lastChunk,
});

describe('UploadAccumulator', () => {
  it('joins chunks per file and copies the bytes', () => {
    const acc = new UploadAccumulator({ maxBytes: 100, maxFiles: 2 });
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
      const acc = new UploadAccumulator({ maxBytes: 10_000, maxFiles: 2 });
      acc.checkAnnounced({ fileCount: 1, totalBytes: announced });
      const data = send(acc, 1000);
      expect([...data]).toEqual(bytes);
      // Exact when announced; otherwise grown by doubling, and trimmed when mostly unused.
      expect(data.buffer.byteLength, `announced ${announced}`).toBeLessThanOrEqual(1250);
    }
  });

  it('enforces caps as soon as they are exceeded and the FileChunk rules', () => {
    const bytes = new UploadAccumulator({ maxBytes: 3, maxFiles: 5 });
    bytes.add(chunk('a', [1, 2, 3], 0, false));
    expect(() => bytes.add(chunk('a', [4], 3, true))).toThrow(/CURIA_PREPROCESS_MAX_UPLOAD_BYTES/);
    const files = new UploadAccumulator({ maxBytes: 100, maxFiles: 1 });
    files.add(chunk('a', [1], 0, true));
    expect(() => files.add(chunk('b', [1], 0, true))).toThrow(/CURIA_PREPROCESS_MAX_UPLOAD_FILES/);
    const reuse = new UploadAccumulator({ maxBytes: 100, maxFiles: 5 });
    reuse.add(chunk('a', [1], 0, true));
    expect(() => reuse.add(chunk('a', [1], 0, true))).toThrow(/reuses/);
    expect(() =>
      new UploadAccumulator({ maxBytes: 9, maxFiles: 5 }).add(chunk('../x', [1], 0, true)),
    ).toThrow(/base name/);
    const open = new UploadAccumulator({ maxBytes: 100, maxFiles: 5 });
    open.add(chunk('a', [1], 0, false));
    expect(() => open.finish()).toThrow(/last_chunk/);
    expect(() =>
      new UploadAccumulator({ maxBytes: 10, maxFiles: 5 }).checkAnnounced({ fileCount: 1, totalBytes: 11 }),
    ).toThrow(/total_bytes/);
  });
});

describe('options', () => {
  it('maps selections, dtypes and study ids', () => {
    expect(sliceSelection({ selection: { $case: 'indices', value: { indices: [5, 1, 5] } } })).toEqual({
      kind: 'indices',
      indices: [1, 5],
    });
    expect(() => sliceSelection({ selection: { $case: 'everyKth', value: 0 } })).toThrow(/every_kth/);
    const central: common.SliceSelection = { selection: { $case: 'centralCount', value: 3 } };
    expect(sliceSelection({ selection: { $case: 'anyOf', value: { parts: [central] } } })).toEqual({
      kind: 'union',
      parts: [{ kind: 'central', count: 3 }],
    });
    const nested: common.SliceSelection = { selection: { $case: 'anyOf', value: { parts: [central] } } };
    expect(() => sliceSelection({ selection: { $case: 'anyOf', value: { parts: [nested] } } })).toThrow(
      /nest/,
    );
    expect(outputDType(common.DType.UNSPECIFIED)).toBe('F32');
    expect(() => outputDType(common.DType.BF16)).toThrow(/output_dtype/);
    expect(() => checkStudyId('John^Doe')).toThrow(/study_id/);
    expect(() => checkStudyId('study-42.a:b_c')).not.toThrow();
  });
});
