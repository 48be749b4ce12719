import { promisify } from 'node:util';
import { gzip, gzipSync } from 'node:zlib';

/** Options of {@link writeNifti} (encodes NIfTI-1/2 files in memory, optionally gzipped). */
export interface NiftiWriteOptions {
  readonly version?: 1 | 2;
  readonly littleEndian?: boolean;
  readonly gzip?: boolean;
  /** dim[1..] (up to 7 entries). */
  readonly dims: readonly number[];
  readonly datatypeCode: number;
  readonly bitpix: number;
  /** Raw voxel bytes, already in the target byte order. */
  readonly voxelBytes: Uint8Array;
  /** Voxel-to-RAS affine, row-major 4x4. */
  readonly affine: readonly number[];
  /**
   * 'sform' writes srow (sform_code 1, qform_code 0); 'qform' writes a quaternion (qform_code 1,
   * sform_code 0); 'both' writes both (codes 1), as label maps meant for any viewer should.
   */
  readonly transform?: 'sform' | 'qform' | 'both' | 'none';
  readonly sclSlope?: number;
  readonly sclInter?: number;
  /** Override dim[0] (defaults to dims.length). */
  readonly ndim?: number;
  /** `intent_code` (0 = none), e.g. 1007 (NIFTI_INTENT_VECTOR) for a displacement field in dim[5]. */
  readonly intentCode?: number;
  /** `xyzt_units` (0 = unknown), e.g. 2 (NIFTI_UNITS_MM). */
  readonly xyztUnits?: number;
}

/** Quaternion (b, c, d), qfac and zooms of an affine's 3x3 part, as NIfTI stores a qform. */
export function affineToQuaternion(a: readonly number[]): {
  bcd: [number, number, number];
  qfac: 1 | -1;
  zooms: number[];
} {
  const zooms = [0, 1, 2].map((c) => Math.hypot(a[c]!, a[4 + c]!, a[8 + c]!));
  const r = [0, 1, 2].map((row) => [0, 1, 2].map((c) => a[row * 4 + c]! / zooms[c]!));
  const det =
    r[0]![0]! * (r[1]![1]! * r[2]![2]! - r[1]![2]! * r[2]![1]!) -
    r[0]![1]! * (r[1]![0]! * r[2]![2]! - r[1]![2]! * r[2]![0]!) +
    r[0]![2]! * (r[1]![0]! * r[2]![1]! - r[1]![1]! * r[2]![0]!);
  const qfac = det < 0 ? -1 : 1;
  if (qfac < 0) for (let row = 0; row < 3; row++) r[row]![2] = -r[row]![2]!;
  const m = (i: number, j: number): number => r[i]![j]!;
  const t = m(0, 0) + m(1, 1) + m(2, 2);
  let qa: number, qb: number, qc: number, qd: number;
  if (t > 0) {
    const s = Math.sqrt(t + 1) * 2;
    [qa, qb, qc, qd] = [0.25 * s, (m(2, 1) - m(1, 2)) / s, (m(0, 2) - m(2, 0)) / s, (m(1, 0) - m(0, 1)) / s];
  } else if (m(0, 0) > m(1, 1) && m(0, 0) > m(2, 2)) {
    const s = Math.sqrt(1 + m(0, 0) - m(1, 1) - m(2, 2)) * 2;
    [qa, qb, qc, qd] = [(m(2, 1) - m(1, 2)) / s, 0.25 * s, (m(0, 1) + m(1, 0)) / s, (m(0, 2) + m(2, 0)) / s];
  } else if (m(1, 1) > m(2, 2)) {
    const s = Math.sqrt(1 + m(1, 1) - m(0, 0) - m(2, 2)) * 2;
    [qa, qb, qc, qd] = [(m(0, 2) - m(2, 0)) / s, (m(0, 1) + m(1, 0)) / s, 0.25 * s, (m(1, 2) + m(2, 1)) / s];
  } else {
    const s = Math.sqrt(1 + m(2, 2) - m(0, 0) - m(1, 1)) * 2;
    [qa, qb, qc, qd] = [(m(1, 0) - m(0, 1)) / s, (m(0, 2) + m(2, 0)) / s, (m(1, 2) + m(2, 1)) / s, 0.25 * s];
  }
  const sign = qa < 0 ? -1 : 1;
  return { bcd: [qb * sign, qc * sign, qd * sign], qfac, zooms };
}

/** Writes a single-file NIfTI-1 (`n+1`) or NIfTI-2 (`n+2`) image. */
export function writeNifti(o: NiftiWriteOptions): Uint8Array {
  const version = o.version ?? 1;
  const le = o.littleEndian ?? true;
  const hdrSize = version === 1 ? 348 : 540;
  const voxOffset = version === 1 ? 352 : 544;
  const out = new Uint8Array(voxOffset + o.voxelBytes.length);
  const dv = new DataView(out.buffer);
  const transform = o.transform ?? 'sform';
  const q = affineToQuaternion(o.affine);
  const withQform = transform === 'qform' || transform === 'both';
  const pixdim = [withQform ? q.qfac : 1, ...q.zooms, 1, 1, 1, 1];
  const dim = [o.ndim ?? o.dims.length, ...o.dims];
  while (dim.length < 8) dim.push(1);
  const srow = o.affine.slice(0, 12);
  const qform = withQform ? 1 : 0;
  const sform = transform === 'sform' || transform === 'both' ? 1 : 0;
  if (version === 1) {
    dv.setInt32(0, hdrSize, le);
    for (let i = 0; i < 8; i++) dv.setInt16(40 + 2 * i, dim[i]!, le);
    dv.setInt16(68, o.intentCode ?? 0, le);
    dv.setInt16(70, o.datatypeCode, le);
    dv.setInt16(72, o.bitpix, le);
    for (let i = 0; i < 8; i++) dv.setFloat32(76 + 4 * i, pixdim[i]!, le);
    dv.setFloat32(108, voxOffset, le);
    dv.setFloat32(112, o.sclSlope ?? 1, le);
    dv.setFloat32(116, o.sclInter ?? 0, le);
    dv.setUint8(123, o.xyztUnits ?? 0);
    dv.setInt16(252, qform, le);
    dv.setInt16(254, sform, le);
    q.bcd.forEach((v, i) => dv.setFloat32(256 + 4 * i, v, le));
    [3, 7, 11].forEach((idx, i) => dv.setFloat32(268 + 4 * i, o.affine[idx]!, le));
    srow.forEach((v, i) => dv.setFloat32(280 + 4 * i, v, le));
    out.set([0x6e, 0x2b, 0x31, 0x00], 344);
  } else {
    dv.setInt32(0, hdrSize, le);
    out.set([0x6e, 0x2b, 0x32, 0x00, 0x0d, 0x0a, 0x1a, 0x0a], 4);
    dv.setInt16(12, o.datatypeCode, le);
    dv.setInt16(14, o.bitpix, le);
    for (let i = 0; i < 8; i++) dv.setBigInt64(16 + 8 * i, BigInt(dim[i]!), le);
    for (let i = 0; i < 8; i++) dv.setFloat64(104 + 8 * i, pixdim[i]!, le);
    dv.setBigInt64(168, BigInt(voxOffset), le);
    dv.setFloat64(176, o.sclSlope ?? 1, le);
    dv.setFloat64(184, o.sclInter ?? 0, le);
    dv.setInt32(344, qform, le);
    dv.setInt32(348, sform, le);
    q.bcd.forEach((v, i) => dv.setFloat64(352 + 8 * i, v, le));
    [3, 7, 11].forEach((idx, i) => dv.setFloat64(376 + 8 * i, o.affine[idx]!, le));
    srow.forEach((v, i) => dv.setFloat64(400 + 8 * i, v, le));
    dv.setInt32(500, o.xyztUnits ?? 0, le);
    dv.setInt32(504, o.intentCode ?? 0, le);
  }
  out.set(o.voxelBytes, voxOffset);
  return o.gzip ? new Uint8Array(gzipSync(out)) : out;
}

/** Encodes int16 values as bytes in the requested order. */
export function int16Bytes(values: ArrayLike<number>, littleEndian = true): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) dv.setInt16(2 * i, values[i]!, littleEndian);
  return out;
}

const gzipOnPool = promisify(gzip);

/**
 * Gzips an encoded (uncompressed) NIfTI file on libuv's thread pool: a server that builds large files
 * in a handler writes them with `gzip: false` and compresses with this, so the event loop (health
 * checks, other calls) is not blocked for the seconds a large file takes.
 */
export async function gzipNiftiAsync(raw: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await gzipOnPool(raw));
}
