import { readHeader } from 'nifti-reader-js';
import { describe, expect, it } from 'vitest';

import { parseNiftiHeader } from './nifti-header.js';
import { int16Bytes, writeNifti } from './nifti-writer.js';

describe('parseNiftiHeader', () => {
  it('reads a header held in a Node Buffer view at a non-zero offset (pooled gRPC bytes)', () => {
    const nii = writeNifti({
      dims: [4, 3, 2],
      datatypeCode: 4,
      bitpix: 16,
      voxelBytes: int16Bytes(Array.from({ length: 24 }, (_, i) => i)),
      affine: [2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 4, 0, 0, 0, 0, 1],
    });
    const backing = Buffer.alloc(nii.length + 777, 0xee);
    backing.set(nii, 777);
    const view = backing.subarray(777);
    expect(view.byteOffset).toBeGreaterThan(0);
    const h = parseNiftiHeader(view);
    expect(h.dim.slice(1, 4)).toEqual([4, 3, 2]);
    expect(h.srow.slice(0, 4)).toEqual([2, 0, 0, 0]);
  });
});

describe('writeNifti', () => {
  it.each([1, 2] as const)(
    'writes intent_code and xyzt_units (NIfTI-%i), as nifti-reader-js reads them',
    (version) => {
      const nii = writeNifti({
        version,
        dims: [2, 2, 1, 1, 3],
        datatypeCode: 16,
        bitpix: 32,
        voxelBytes: new Uint8Array(12 * 4),
        affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
        intentCode: 1007,
        xyztUnits: 2,
      });
      const h = readHeader(nii.buffer as ArrayBuffer);
      expect(h.intent_code).toBe(1007);
      expect(h.xyzt_units).toBe(2);
      expect(h.dims.slice(0, 6).map(Number)).toEqual([5, 2, 2, 1, 1, 3]);
    },
  );
});
