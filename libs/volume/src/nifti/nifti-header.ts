import { readHeader, type NIFTI1, type NIFTI2 } from 'nifti-reader-js';

import { CuriaError } from '@curia/errors';

import type { VoxelType } from '../io/voxel-array.js';

/** Which NIfTI header a buffer starts with, judged from `sizeof_hdr` in either byte order. */
export function niftiVersionOf(bytes: Uint8Array): 1 | 2 | null {
  if (bytes.length < 4) return null;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, 4);
  for (const le of [true, false]) {
    const size = dv.getInt32(0, le);
    if (size === 348) return 1;
    if (size === 540) return 2;
  }
  return null;
}

/** Header size in bytes of a NIfTI version. */
export const NIFTI_HEADER_BYTES = { 1: 348, 2: 540 } as const;

/** The header fields the reader needs, normalised across NIfTI-1 and NIfTI-2. */
export interface NiftiHeaderInfo {
  readonly version: 1 | 2;
  readonly littleEndian: boolean;
  /** `dim[0..7]`. */
  readonly dim: readonly number[];
  /** `pixdim[0..7]`. */
  readonly pixdim: readonly number[];
  readonly datatypeCode: number;
  readonly bitpix: number;
  readonly voxOffset: number;
  readonly sclSlope: number;
  readonly sclInter: number;
  readonly qformCode: number;
  readonly sformCode: number;
  readonly quatern: readonly [number, number, number];
  readonly qoffset: readonly [number, number, number];
  /** `srow_x`, `srow_y`, `srow_z` (12 numbers, row-major). */
  readonly srow: readonly number[];
}

/**
 * Parses a NIfTI-1/2 header with nifti-reader-js, adding the sform rows it drops when a qform is
 * present (nibabel prefers the sform, so we need them).
 */
export function parseNiftiHeader(head: Uint8Array): NiftiHeaderInfo {
  const version = niftiVersionOf(head);
  if (version === null)
    throw new CuriaError('INVALID_ARGUMENT', 'not a NIfTI header: sizeof_hdr is neither 348 nor 540');
  const size = NIFTI_HEADER_BYTES[version];
  if (head.length < size) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `truncated NIfTI-${version} header: ${head.length} of ${size} bytes`,
    );
  }
  // Exactly the header: nifti-reader-js then skips extension parsing, which we do not need. A copy,
  // because a Node Buffer's slice() is a view into a shared pool, whose .buffer starts elsewhere.
  const ab = new Uint8Array(head.subarray(0, size)).buffer;
  let h: NIFTI1 | NIFTI2;
  try {
    h = readHeader(ab);
  } catch (e) {
    throw new CuriaError('INVALID_ARGUMENT', `invalid NIfTI-${version} header (bad magic)`, { cause: e });
  }
  if ('isHDR' in h && h.isHDR) {
    throw new CuriaError(
      'UNIMPLEMENTED',
      'NIfTI hdr/img pairs (magic "ni1") are not supported; convert to a single .nii',
    );
  }
  const dv = new DataView(ab);
  const le = h.littleEndian;
  const srow: number[] = [];
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 4; c++) {
      srow.push(
        version === 1 ? dv.getFloat32(280 + r * 16 + c * 4, le) : dv.getFloat64(400 + r * 32 + c * 8, le),
      );
    }
  }
  return {
    version,
    littleEndian: le,
    dim: h.dims.map(Number),
    pixdim: h.pixDims.map(Number),
    datatypeCode: h.datatypeCode,
    bitpix: h.numBitsPerVoxel,
    voxOffset: Number(h.vox_offset),
    sclSlope: h.scl_slope,
    sclInter: h.scl_inter,
    qformCode: h.qform_code,
    sformCode: h.sform_code,
    quatern: [h.quatern_b, h.quatern_c, h.quatern_d],
    qoffset: [h.qoffset_x, h.qoffset_y, h.qoffset_z],
    srow,
  };
}

const DATATYPES: Readonly<Record<number, VoxelType>> = {
  2: 'uint8',
  4: 'int16',
  8: 'int32',
  16: 'float32',
  64: 'float64',
  256: 'int8',
  512: 'uint16',
  768: 'uint32',
};

const UNSUPPORTED_NAMES: Readonly<Record<number, string>> = {
  0: 'unknown',
  1: 'binary',
  32: 'complex64',
  128: 'RGB24',
  1024: 'int64',
  1280: 'uint64',
  1536: 'float128',
  1792: 'complex128',
  2048: 'complex256',
  2304: 'RGBA32',
};

/** Maps a NIfTI datatype code to a voxel type, or throws UNIMPLEMENTED/INVALID_ARGUMENT naming the code. */
export function niftiVoxelType(code: number): VoxelType {
  const t = DATATYPES[code];
  if (t) return t;
  const name = UNSUPPORTED_NAMES[code];
  if (name !== undefined) {
    throw new CuriaError(
      'UNIMPLEMENTED',
      `NIfTI datatype ${code} (${name}) is not supported; supported: int8/16/32, uint8/16/32, float32/64`,
    );
  }
  throw new CuriaError('INVALID_ARGUMENT', `NIfTI datatype code ${code} is not a valid NIfTI datatype`);
}
