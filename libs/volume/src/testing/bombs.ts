import { gzipSync } from 'node:zlib';

import { writeNifti } from '../nifti/nifti-writer.js';

const BLOCK_BYTES = 16 * 1024 * 1024;
let zeros: Buffer | undefined;

/** NIfTI datatype code and bits of each voxel type a bomb may declare. */
const DATATYPES = { uint8: [2, 8], int16: [4, 16], float32: [16, 32], float64: [64, 64] } as const;

/**
 * A `.nii.gz` decompression bomb: a NIfTI-1 header declaring `dims` of `type`, then gzip members of
 * 16 MiB of zeros that really inflate to the voxels it declares (about 16 KiB each, so a 2 GB
 * volume is a ~2 MB file). Concatenated gzip members are one valid gzip stream.
 */
export function niftiGzipBomb(dims: readonly [number, number, number], type: keyof typeof DATATYPES): Buffer {
  const [datatypeCode, bitpix] = DATATYPES[type];
  const header = Buffer.from(
    writeNifti({
      dims: [1, 1, 1],
      datatypeCode,
      bitpix,
      voxelBytes: new Uint8Array(bitpix / 8),
      affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
    }).subarray(0, 352),
  );
  dims.forEach((d, i) => header.writeInt16LE(d, 42 + 2 * i));
  zeros ??= gzipSync(Buffer.alloc(BLOCK_BYTES), { level: 9 });
  const block = zeros;
  const blocks = Math.ceil((dims[0] * dims[1] * dims[2] * bitpix) / 8 / BLOCK_BYTES);
  return Buffer.concat([gzipSync(header), ...Array.from({ length: blocks }, () => block)]);
}
