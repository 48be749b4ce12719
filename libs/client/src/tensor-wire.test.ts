import { common } from '@curia/proto';
import { describe, expect, it } from 'vitest';

import { decodeWireTensor, wireFloats } from './tensor-wire.js';

const f32 = (values: number[], shape: number[], offset = 0): common.Tensor => {
  const buf = new Uint8Array(offset + values.length * 4);
  new DataView(buf.buffer).setFloat32(0, 0, true);
  values.forEach((v, i) => new DataView(buf.buffer).setFloat32(offset + i * 4, v, true));
  return { dtype: common.DType.F32, shape, data: buf.subarray(offset) };
};

describe('wire tensors', () => {
  it('decodes F32 in place when aligned and copies when misaligned or owned', () => {
    const aligned = f32([1, 2, 3], [3]);
    expect(decodeWireTensor(aligned, 't').data).toBe(aligned.data);
    expect(decodeWireTensor(aligned, 't', { own: true }).data).not.toBe(aligned.data);
    const odd = f32([1, 2, 3], [3], 1);
    const raw = decodeWireTensor(odd, 't');
    expect(raw.data.byteOffset % 4).toBe(0);
    expect(Array.from(wireFloats(odd))).toEqual([1, 2, 3]);
  });

  it('converts F16 to float32', () => {
    const t: common.Tensor = {
      dtype: common.DType.F16,
      shape: [2],
      data: new Uint8Array([0x00, 0x3c, 0x00, 0xc0]),
    };
    expect(Array.from(wireFloats(t))).toEqual([1, -2]);
  });

  it('names the field for a wrong dtype, shape or byte length, and for NaN when asked', () => {
    const t = f32([1, 2, 3, 4], [2, 2]);
    expect(() => decodeWireTensor(t, 'x', { dtypes: ['F16'] })).toThrow(
      /x\.dtype must be D_TYPE_F16 \(got D_TYPE_F32\)/,
    );
    expect(() => decodeWireTensor(t, 'x', { shape: [4] })).toThrow(/x\.shape must be \[4\] \(got \[2, 2\]\)/);
    expect(() => decodeWireTensor({ ...t, shape: [3] }, 'x')).toThrow(
      /x\.data has 16 bytes; dtype F32 and shape \[3\] need 12/,
    );
    expect(() => decodeWireTensor({ ...t, shape: [-1, -4] }, 'x')).toThrow(
      /x\.shape has an invalid dimension -1/,
    );
    expect(() => decodeWireTensor(undefined, 'x')).toThrow(/x is missing/);
    expect(() => decodeWireTensor({ ...t, dtype: common.DType.UNSPECIFIED }, 'x')).toThrow(
      /a concrete dtype/,
    );
    expect(() => wireFloats(f32([1, NaN], [2]), 'y', { finite: true })).toThrow(
      /y contains NaN or Inf \(element 1\)/,
    );
    expect(Array.from(wireFloats(f32([1, NaN], [2]), 'y')).length).toBe(2);
  });
});
