import { gunzipSync } from 'node:zlib';

import { CuriaError } from '@curia/errors';
import { DEFAULT_VOLUME_LIMITS, flipWorldXY, openVolume, writeNifti } from '@curia/volume';

import { voxelCount, type GridField, type LabelField } from './field.js';
import { volumeField } from './resample.js';

/**
 * Displacement fields as NIfTI-1 vector images, in the layout ITK and ANTs read and write.
 *
 * What is stored (`writeDisplacementNifti`):
 * - dim = [5, X, Y, Z, 1, 3] (dim[4] = 1 time point, dim[5] = the 3 vector components), float32,
 *   `intent_code` 1007 (NIFTI_INTENT_VECTOR), `xyzt_units` mm;
 * - the grid's affine converted to RAS (NIfTI's world), in both sform and qform (codes 1), so every
 *   reader places the voxels identically;
 * - component c of voxel (i, j, k) at i + X·(j + Y·(k + Z·c)), and the components are **LPS
 *   millimetres**: u = x_moving − x_fixed with x in DICOM/ITK patient coordinates, x_moving = x_fixed +
 *   u(x_fixed) (a pull-back field: sample the moving image at x + u to warp it onto this grid).
 *
 * Why LPS, although the header's affine is RAS: ITK's NiftiImageIO converts the header geometry from
 * RAS to its LPS physical space (it negates the first two rows of the sform/qform for the origin and
 * direction) but copies vector pixel components as stored, without any sign change, and
 * `DisplacementFieldTransform` adds them to LPS physical points. ITK and ANTs therefore write and
 * expect displacement vectors in LPS (`antsApplyTransforms` and `itk::TransformFileReader` applied to
 * a `*Warp.nii.gz`). Tools built on nibabel that assume RAS vectors must negate x and y (nitransforms
 * does so when it reads ITK fields). This file is thus directly usable as an ANTs/ITK displacement
 * field: `antsApplyTransforms -d 3 -i moving.nii.gz -r fixed.nii.gz -t field.nii.gz -o warped.nii.gz`.
 */

/** NIFTI_INTENT_VECTOR: each voxel holds a vector along dim[5]. */
export const NIFTI_INTENT_VECTOR = 1007;
/** NIFTI_INTENT_DISPVECT: a displacement vector (accepted when reading). */
export const NIFTI_INTENT_DISPVECT = 1006;

/** Encodes a 3-channel displacement field (LPS mm) as a NIfTI-1 vector image (see the module comment). */
export function writeDisplacementNifti(u: GridField, options: { readonly gzip?: boolean } = {}): Uint8Array {
  const n = voxelCount(u.grid);
  if (u.channels !== 3 || u.data.length !== 3 * n) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      'a displacement field has 3 channels of one value per grid voxel',
    );
  }
  const bytes = new Uint8Array(4 * 3 * n);
  const dv = new DataView(bytes.buffer);
  for (let q = 0; q < 3 * n; q++) dv.setFloat32(4 * q, u.data[q]!, true);
  return writeNifti({
    dims: [...u.grid.dims, 1, 3],
    datatypeCode: 16,
    bitpix: 32,
    voxelBytes: bytes,
    affine: flipWorldXY(u.grid.affine),
    transform: 'both',
    intentCode: NIFTI_INTENT_VECTOR,
    xyztUnits: 2,
    gzip: options.gzip ?? true,
  });
}

/** The header fields the reader checks before decoding: dim[0..5] and intent_code, NIfTI-1 or 2. */
function vectorHeader(raw: Uint8Array): { dim: number[]; intent: number } {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (const le of [true, false]) {
    const size = raw.length >= 4 ? dv.getInt32(0, le) : 0;
    if (size === 348 && raw.length >= 348) {
      return { dim: [0, 1, 2, 3, 4, 5].map((i) => dv.getInt16(40 + 2 * i, le)), intent: dv.getInt16(68, le) };
    }
    if (size === 540 && raw.length >= 540) {
      return {
        dim: [0, 1, 2, 3, 4, 5].map((i) => Number(dv.getBigInt64(16 + 8 * i, le))),
        intent: dv.getInt32(504, le),
      };
    }
  }
  throw new CuriaError('INVALID_ARGUMENT', 'not a NIfTI-1/2 file (sizeof_hdr is neither 348 nor 540)');
}

/**
 * Reads a displacement field written by {@link writeDisplacementNifti}, ITK or ANTs (NIfTI-1/2, gzipped
 * or not, intent 1007 or 1006, dims [X, Y, Z, 1, 3], any stored numeric type): a 3-channel field on
 * the file's grid (LPS affine), components taken as stored, i.e. LPS mm.
 */
export async function readDisplacementNifti(bytes: Uint8Array): Promise<GridField> {
  const gz = bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  let raw: Uint8Array;
  try {
    raw = gz ? gunzipSync(bytes, { maxOutputLength: DEFAULT_VOLUME_LIMITS.maxDecompressedBytes }) : bytes;
  } catch (e) {
    throw new CuriaError('INVALID_ARGUMENT', 'the displacement field is not valid gzip data', { cause: e });
  }
  const { dim, intent } = vectorHeader(raw);
  if (intent !== NIFTI_INTENT_VECTOR && intent !== NIFTI_INTENT_DISPVECT) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `a displacement field has intent_code 1007 (vector) or 1006 (displacement), this file has ${intent}`,
    );
  }
  if (dim[0] !== 5 || dim[4] !== 1 || dim[5] !== 3) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `a 3D displacement field has dims [X, Y, Z, 1, 3] (dim[0] = 5), this file has dim = [${dim.join(', ')}]`,
    );
  }
  const parts: GridField[] = [];
  for (let c = 0; c < 3; c++)
    parts.push(await volumeField(await openVolume({ kind: 'bytes', data: raw }, { volumeIndex: c })));
  const grid = parts[0]!.grid;
  const n = voxelCount(grid);
  const data = new Float32Array(3 * n);
  parts.forEach((p, c) => data.set(p.data, c * n));
  return { grid, channels: 3, data };
}

/**
 * A scalar image or label map on a grid (LPS affine) as a gzipped NIfTI-1 file with the grid's
 * affine (in RAS, as NIfTI stores it) in sform and qform: F32 for a one-channel field, U8/U16 for a
 * label map (type kept). Warped outputs on the fixed grid are written with it.
 */
export function writeImageNifti(
  image: GridField | LabelField,
  options: { readonly gzip?: boolean } = {},
): Uint8Array {
  const n = voxelCount(image.grid);
  const data = image.data;
  if ('channels' in image && image.channels !== 1) {
    throw new CuriaError('INVALID_ARGUMENT', `an image NIfTI holds one channel, got ${image.channels}`);
  }
  if (data.length !== n) throw new CuriaError('INVALID_ARGUMENT', `${data.length} values for ${n} voxels`);
  const [datatypeCode, bitpix] =
    data instanceof Float32Array ? [16, 32] : data instanceof Uint16Array ? [512, 16] : [2, 8];
  const bytes = new Uint8Array(data.byteLength);
  const dv = new DataView(bytes.buffer);
  if (data instanceof Float32Array) for (let q = 0; q < n; q++) dv.setFloat32(4 * q, data[q]!, true);
  else if (data instanceof Uint16Array) for (let q = 0; q < n; q++) dv.setUint16(2 * q, data[q]!, true);
  else bytes.set(data);
  return writeNifti({
    dims: [...image.grid.dims],
    datatypeCode,
    bitpix,
    voxelBytes: bytes,
    affine: flipWorldXY(image.grid.affine),
    transform: 'both',
    xyztUnits: 2,
    gzip: options.gzip ?? true,
  });
}
