import { describe, expect, it } from 'vitest';

import { common, preprocess } from '@curia/proto';

import { encodeSliceResponse, preprocessServerDefinition } from './wire.js';

function slice(bytes: number, withStats: boolean): preprocess.PreprocessedSlice {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 31 + 7) & 0xff;
  return {
    mapping: { canonicalIndex: 300, inputSliceIndex: 17, inputAxis: 2 },
    pixels: { dtype: common.DType.F32, shape: [1, 512, bytes / 2048], data },
    ...(withStats ? { rawStats: { min: -1024, max: 3071.5, mean: -12.25, std: 401.5 } } : {}),
  };
}

describe('encodeSliceResponse', () => {
  it('produces the same bytes as the generated encoder, at every length-prefix width', () => {
    for (const bytes of [2048, 16 * 2048, 512 * 2048, 2 * 512 * 2048]) {
      for (const withStats of [true, false]) {
        const s = slice(bytes, withStats);
        const want = preprocess.PreprocessResponse.encode({ msg: { $case: 'slice', value: s } }).finish();
        const got = encodeSliceResponse(s);
        expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
        const back = preprocess.PreprocessResponse.decode(got).msg;
        expect(
          back?.$case === 'slice' && Buffer.from(back.value.pixels!.data).equals(Buffer.from(s.pixels!.data)),
        ).toBe(true);
      }
    }
  });

  it('falls back to the generated encoder for empty pixels and other messages', () => {
    const empty: preprocess.PreprocessedSlice = {
      mapping: { canonicalIndex: 1, inputSliceIndex: 1, inputAxis: 0 },
    };
    const want = preprocess.PreprocessResponse.encode({ msg: { $case: 'slice', value: empty } }).finish();
    expect(Buffer.from(encodeSliceResponse(empty)).equals(Buffer.from(want))).toBe(true);
    const done: preprocess.PreprocessResponse = {
      msg: { $case: 'done', value: { slicesSent: 3, bytesReceived: 10, timings: [] } },
    };
    const enc = preprocessServerDefinition.methods.preprocess.responseType.encode(done).finish();
    expect(Buffer.from(enc).equals(Buffer.from(preprocess.PreprocessResponse.encode(done).finish()))).toBe(
      true,
    );
  });
});
