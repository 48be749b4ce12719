import { CuriaError } from '@curia/errors';

import { gunzipRange, isGzip, type ByteRange } from '../io/gzip.js';
import { formatBytes, type AdmitVolume, type VolumeLimits } from '../io/limits.js';
import {
  countNonFinite,
  viewCopies,
  viewVoxels,
  VOXEL_TYPE_BYTES,
  type VoxelArray,
  type VoxelType,
} from '../io/voxel-array.js';
import { niftiAffine, type NiftiAffineSource } from './nifti-affine.js';
import {
  NIFTI_HEADER_BYTES,
  niftiVersionOf,
  niftiVoxelType,
  parseNiftiHeader,
  type NiftiHeaderInfo,
} from './nifti-header.js';

/** One 3D NIfTI volume with its stored voxels (Fortran order: i fastest) and scaling. */
export interface NiftiVolumeData {
  readonly version: 1 | 2;
  readonly littleEndian: boolean;
  readonly dims: readonly [number, number, number];
  readonly voxelType: VoxelType;
  readonly datatypeCode: number;
  readonly voxels: VoxelArray;
  /** Scaling applied to stored values (1 and 0 when the header has none). */
  readonly slope: number;
  readonly inter: number;
  /** Voxel-to-RAS affine, row-major 4x4. */
  readonly affine: number[];
  readonly affineSource: NiftiAffineSource;
  /** Number of 3D volumes in the file (product of dim[4..]). */
  readonly volumeCount: number;
  readonly volumeIndex: number;
  readonly compressed: boolean;
}

/** Options of {@link readNifti}. */
export interface ReadNiftiOptions {
  readonly limits: VolumeLimits;
  /** Which 3D volume of a 4D+ file to read; required when there is more than one. */
  readonly volumeIndex?: number;
  /** True when the reader may byte-swap `bytes` in place (the caller will not reuse them). */
  readonly owned?: boolean;
  readonly signal?: AbortSignal;
  /** Called with the planned volume after the header is read, before its voxels are allocated. */
  readonly admit?: AdmitVolume;
}

interface Plan {
  readonly header: NiftiHeaderInfo;
  readonly dims: [number, number, number];
  readonly voxelType: VoxelType;
  readonly volumeCount: number;
  readonly volumeIndex: number;
  readonly range: ByteRange;
}

/**
 * Reads one 3D volume from NIfTI-1/2 bytes (`.nii`, or `.nii.gz` detected by its magic). Only the
 * selected volume's voxels are kept; uncompressed input is viewed in place when aligned and
 * little-endian. Sizes are validated against `limits` before any voxel allocation.
 */
export async function readNifti(bytes: Uint8Array, opts: ReadNiftiOptions): Promise<NiftiVolumeData> {
  let plan: Plan | null = null;
  const compressed = isGzip(bytes);
  const planner = async (head: Uint8Array): Promise<ByteRange> => {
    const p = planNifti(head, opts);
    const voxelBytes = p.range.length;
    await opts.admit?.({
      format: 'nifti',
      dims: p.dims,
      voxelType: p.voxelType,
      voxelBytes,
      heldBytes:
        compressed ||
        viewCopies(bytes.byteOffset + p.range.start, p.voxelType, p.header.littleEndian, opts.owned ?? false)
          ? voxelBytes
          : 0,
    });
    plan = p;
    return p.range;
  };
  let body: Uint8Array;
  let owned = opts.owned ?? false;
  if (compressed) {
    const r = await gunzipRange(bytes, {
      headBytes: NIFTI_HEADER_BYTES[2],
      plan: planner,
      maxDecompressedBytes: opts.limits.maxDecompressedBytes,
      signal: opts.signal,
    });
    body = r.body;
    owned = true;
  } else {
    const range = await planner(bytes);
    if (range.start + range.length > bytes.length) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `truncated NIfTI file: voxel data needs bytes up to ${range.start + range.length} but the file has ${bytes.length}`,
      );
    }
    body = bytes.subarray(range.start, range.start + range.length);
  }
  const p = plan as Plan | null;
  if (!p) throw new CuriaError('INTERNAL', 'NIfTI plan missing after reading');
  const h = p.header;
  const voxels = viewVoxels(body, p.voxelType, h.littleEndian, owned);
  const bad = countNonFinite(voxels);
  if (bad > 0)
    throw new CuriaError('INVALID_ARGUMENT', `volume contains ${bad} non-finite voxels (NaN or Inf)`);
  const { slope, inter } = scaling(h);
  const { affine, source } = niftiAffine(h, p.dims);
  return {
    version: h.version,
    littleEndian: h.littleEndian,
    dims: p.dims,
    voxelType: p.voxelType,
    datatypeCode: h.datatypeCode,
    voxels,
    slope,
    inter,
    affine,
    affineSource: source,
    volumeCount: p.volumeCount,
    volumeIndex: p.volumeIndex,
    compressed,
  };
}

function planNifti(head: Uint8Array, opts: ReadNiftiOptions): Plan {
  if (niftiVersionOf(head) === null) {
    throw new CuriaError('INVALID_ARGUMENT', 'not a NIfTI file: sizeof_hdr is neither 348 nor 540');
  }
  const header = parseNiftiHeader(head);
  const voxelType = niftiVoxelType(header.datatypeCode);
  const elem = VOXEL_TYPE_BYTES[voxelType];
  if (header.bitpix !== elem * 8) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `NIfTI bitpix ${header.bitpix} does not match datatype ${header.datatypeCode} (${voxelType}, ${elem * 8} bits)`,
    );
  }
  const ndim = header.dim[0] ?? 0;
  if (!(ndim >= 1 && ndim <= 7))
    throw new CuriaError('INVALID_ARGUMENT', `NIfTI dim[0] is ${ndim}; must be 1..7`);
  const dimAt = (i: number): number => (i <= ndim ? (header.dim[i] ?? 0) : 1);
  for (let i = 1; i <= ndim; i++) {
    const d = dimAt(i);
    if (!Number.isSafeInteger(d) || d <= 0) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `NIfTI dim[${i}] is ${d}; every used dimension must be a positive integer`,
      );
    }
  }
  const dims: [number, number, number] = [dimAt(1), dimAt(2), dimAt(3)];
  let volumeCount = 1;
  for (let i = 4; i <= 7; i++) volumeCount *= dimAt(i);
  const volumeBytes = dims[0] * dims[1] * dims[2] * elem;
  if (volumeBytes > opts.limits.maxVoxelBytes) {
    throw new CuriaError(
      'RESOURCE_EXHAUSTED',
      `volume ${dims.join('x')} ${voxelType} needs ${formatBytes(volumeBytes)} of voxels, above the limit of ${formatBytes(opts.limits.maxVoxelBytes)} (maxVoxelBytes)`,
    );
  }
  let volumeIndex = opts.volumeIndex ?? 0;
  if (volumeCount > 1 && opts.volumeIndex === undefined) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `NIfTI holds ${volumeCount} volumes (dim[4..7] = ${[4, 5, 6, 7].map(dimAt).join(',')}); pass volumeIndex to pick one`,
    );
  }
  if (!Number.isInteger(volumeIndex) || volumeIndex < 0 || volumeIndex >= volumeCount) {
    throw new CuriaError('OUT_OF_RANGE', `volumeIndex ${volumeIndex} is outside 0..${volumeCount - 1}`);
  }
  volumeIndex = Math.trunc(volumeIndex);
  const headerBytes = NIFTI_HEADER_BYTES[header.version];
  // A single-file NIfTI with vox_offset 0 (seen in the wild) stores voxels right after header + extender.
  const voxOffset = header.voxOffset >= headerBytes ? header.voxOffset : headerBytes + 4;
  if (!Number.isSafeInteger(voxOffset)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `NIfTI vox_offset ${header.voxOffset} is not an integer byte offset`,
    );
  }
  return {
    header,
    dims,
    voxelType,
    volumeCount,
    volumeIndex,
    range: { start: voxOffset + volumeIndex * volumeBytes, length: volumeBytes },
  };
}

/** nibabel semantics: slope 0 or non-finite => no scaling; a valid slope with a non-finite intercept is an error. */
function scaling(h: NiftiHeaderInfo): { slope: number; inter: number } {
  if (h.sclSlope === 0 || !Number.isFinite(h.sclSlope)) return { slope: 1, inter: 0 };
  if (!Number.isFinite(h.sclInter)) {
    throw new CuriaError('INVALID_ARGUMENT', 'NIfTI scl_slope is valid but scl_inter is not finite');
  }
  return { slope: h.sclSlope, inter: h.sclInter };
}
