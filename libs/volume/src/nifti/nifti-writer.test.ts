import { gunzipSync } from 'node:zlib';

import { describe, expect, it } from 'vitest';

import { gzipNiftiAsync, writeNifti } from './nifti-writer.js';

describe('gzipNiftiAsync', () => {
  it('gives the same file as writeNifti with gzip, compressed off the event loop', async () => {
    const o = {
      dims: [4, 3, 2],
      datatypeCode: 2,
      bitpix: 8,
      voxelBytes: Uint8Array.from({ length: 24 }, (_, i) => i),
      affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
    } as const;
    const raw = writeNifti({ ...o, gzip: false });
    const gz = await gzipNiftiAsync(raw);
    expect(gz[0]).toBe(0x1f);
    expect(gz[1]).toBe(0x8b);
    expect(new Uint8Array(gunzipSync(gz))).toEqual(raw);
    expect(new Uint8Array(gunzipSync(writeNifti({ ...o, gzip: true })))).toEqual(raw);
  });
});
