import { readdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

import { CuriaError, isCuriaError } from '@curia/errors';

import {
  assembleDicomSeries,
  decodeSeriesSlice,
  extractSeriesFrame,
  isDicomPart10,
  type DicomSeries,
} from './dicom/series.js';
import type { EncodedFrame, StoredPixels } from './dicom/pixel-data.js';
import { computeGeometry, type Geometry } from './geometry/geometry.js';
import { openRegular, type AllowedRef, type Refuse } from './io/allowed-uri.js';
import { isGzip } from './io/gzip.js';
import { DEFAULT_VOLUME_LIMITS, formatBytes, type AdmitVolume, type VolumeLimits } from './io/limits.js';
import { gatherSlice, sliceWalk, type SliceWalk } from './io/slice-gather.js';
import { ownedCopy, VOXEL_TYPE_BYTES, type VoxelArray, type VoxelType } from './io/voxel-array.js';
import { niftiVersionOf } from './nifti/nifti-header.js';
import { readNifti, type NiftiVolumeData } from './nifti/nifti-reader.js';

/**
 * Where a volume comes from. Formats are detected from content, never from names (`filename` and
 * `name` are informational only). `files` is a DICOM series (or one NIfTI); a `path` directory is
 * read as a DICOM series (non-DICOM files in it are ignored). `ref` is a request's `file://` ref
 * already opened under the allowed roots ({@link openAllowedRef}); {@link openVolume} closes it.
 * Only regular files are read (FIFOs, sockets and devices are refused, never waited on).
 */
export type VolumeSource =
  | { readonly kind: 'bytes'; readonly data: Uint8Array; readonly filename?: string }
  | {
      readonly kind: 'files';
      readonly files: readonly { readonly name: string; readonly data: Uint8Array }[];
    }
  | { readonly kind: 'path'; readonly path: string }
  | { readonly kind: 'ref'; readonly ref: AllowedRef };

/** Options of {@link openVolume}. */
export interface OpenVolumeOptions {
  /** Which 3D volume of a 4D NIfTI to read (required when it holds more than one). */
  readonly volumeIndex?: number;
  /** Which series to use when DICOM files mix several. */
  readonly seriesInstanceUid?: string;
  /** Size limits; unspecified fields use {@link DEFAULT_VOLUME_LIMITS}. */
  readonly limits?: Partial<VolumeLimits>;
  readonly signal?: AbortSignal;
  /**
   * Called once the header(s) declare what the volume decodes to, before its voxels are decoded or
   * allocated (a NIfTI's dims × dtype from the first bytes of a `.nii.gz`; a DICOM series' rows ×
   * columns × frames × bits allocated): may wait for memory, or throw to refuse the volume.
   */
  readonly admit?: AdmitVolume;
}

/** Format-specific facts about an opened volume (no patient identifiers). */
export type VolumeInfo =
  | {
      readonly format: 'nifti';
      readonly niftiVersion: 1 | 2;
      readonly compressed: boolean;
      readonly littleEndian: boolean;
      readonly datatypeCode: number;
      readonly affineSource: 'sform' | 'qform' | 'pixdim';
      readonly volumeIndex: number;
      readonly volumeCount: number;
      readonly slope: number;
      readonly inter: number;
    }
  | {
      readonly format: 'dicom';
      readonly fileCount: number;
      readonly transferSyntaxUids: readonly string[];
      readonly bitsAllocated: number;
      readonly bitsStored: number;
      readonly pixelRepresentation: 0 | 1;
      /** DICOM Modality (0008,0060), e.g. "CT", "MR"; "" when absent. */
      readonly modality: string;
    };

/**
 * An opened volume: header and geometry are parsed; voxels are read per canonical slice
 * (DICOM frames are decoded on demand for axial series).
 */
export interface Volume {
  readonly geometry: Geometry;
  /** Stored element type before scaling. */
  readonly voxelType: VoxelType;
  readonly info: VolumeInfo;
  /** Number of canonical (axial) slices. */
  readonly sliceCount: number;
  /**
   * Reads canonical slice `k` (rows x cols of `geometry.canonicalDims`, rows -> P, cols -> L) with
   * scaling applied, into `out` (allocated when absent or too small).
   */
  readCanonicalSlice(k: number, out?: Float64Array): Promise<Float64Array>;
  /**
   * Canonical slice `k` as one input plane, with how to gather and scale it
   * (`gatherSlice(voxels, walk, rows, cols, slope, inter, ...)` gives exactly
   * {@link readCanonicalSlice}'s values): the stored voxels, copied into `out` when it has the
   * same type and size (else a fresh array), or for a compressed DICOM frame the codestream to
   * decode first (`decodeFrame`). Arrays always own their whole buffer, so they can be transferred
   * to another thread. Null when canonical slices cut across input planes (non-axial acquisitions).
   */
  readCanonicalPlane?(k: number, out?: VoxelArray): Promise<CanonicalPlane | null>;
}

/** One canonical slice as an input plane: see {@link Volume.readCanonicalPlane}. */
export type CanonicalPlane = {
  readonly walk: SliceWalk;
  readonly slope: number;
  readonly inter: number;
} & ({ readonly voxels: VoxelArray } | { readonly encoded: EncodedFrame });

/** A copy of `src` in `out` when it has the same type and length, else an {@link ownedCopy}. */
function copyVoxels(src: VoxelArray, out: VoxelArray | undefined): VoxelArray {
  const type = Buffer.isBuffer(src) ? Uint8Array : src.constructor;
  if (!out || out.constructor !== type || out.length !== src.length) return ownedCopy(src);
  out.set(src);
  return out;
}

function checkSliceIndex(g: Geometry, k: number): void {
  if (!Number.isInteger(k) || k < 0 || k >= g.canonicalDims[0]) {
    throw new CuriaError('OUT_OF_RANGE', `canonical slice ${k} is outside 0..${g.canonicalDims[0] - 1}`);
  }
}

function sliceBuffer(g: Geometry, out: Float64Array | undefined): Float64Array {
  const n = g.canonicalDims[1] * g.canonicalDims[2];
  return out && out.length >= n ? out : new Float64Array(n);
}

class NiftiVolume implements Volume {
  readonly geometry: Geometry;
  readonly info: VolumeInfo;
  constructor(private readonly data: NiftiVolumeData) {
    this.geometry = computeGeometry(data.dims, data.affine, 'RAS');
    this.info = {
      format: 'nifti',
      niftiVersion: data.version,
      compressed: data.compressed,
      littleEndian: data.littleEndian,
      datatypeCode: data.datatypeCode,
      affineSource: data.affineSource,
      volumeIndex: data.volumeIndex,
      volumeCount: data.volumeCount,
      slope: data.slope,
      inter: data.inter,
    };
  }
  get voxelType(): VoxelType {
    return this.data.voxelType;
  }
  get sliceCount(): number {
    return this.geometry.canonicalDims[0];
  }
  readCanonicalSlice(k: number, out?: Float64Array): Promise<Float64Array> {
    const g = this.geometry;
    checkSliceIndex(g, k);
    const buf = sliceBuffer(g, out);
    const [ni, nj] = this.data.dims;
    const walk = sliceWalk(g, k, [1, ni, ni * nj]);
    gatherSlice(
      this.data.voxels,
      walk,
      g.canonicalDims[1],
      g.canonicalDims[2],
      this.data.slope,
      this.data.inter,
      buf,
    );
    return Promise.resolve(buf);
  }
  readCanonicalPlane(k: number, out?: VoxelArray): Promise<CanonicalPlane | null> {
    const g = this.geometry;
    checkSliceIndex(g, k);
    if (g.axes.slice.inputAxis !== 2) return Promise.resolve(null);
    const [ni, nj] = this.data.dims;
    const start = g.sliceInputIndex[k]! * ni * nj;
    return Promise.resolve({
      voxels: copyVoxels(this.data.voxels.subarray(start, start + ni * nj), out),
      walk: sliceWalk(g, k, [1, ni, 0]),
      slope: this.data.slope,
      inter: this.data.inter,
    });
  }
}

class DicomVolume implements Volume {
  readonly geometry: Geometry;
  readonly info: VolumeInfo;
  readonly voxelType: VoxelType;
  /** Decoded frames, kept only for non-axial series whose canonical slices cross frames. */
  private planes: StoredPixels[] | null = null;
  constructor(private readonly series: DicomSeries) {
    this.geometry = computeGeometry(series.dims, series.affine, 'LPS');
    const f = series.format;
    this.voxelType = `${f.pixelRepresentation === 1 ? 'int' : 'uint'}${f.bitsAllocated}` as VoxelType;
    this.info = {
      format: 'dicom',
      fileCount: series.slices.length,
      transferSyntaxUids: series.transferSyntaxUids,
      bitsAllocated: f.bitsAllocated,
      bitsStored: f.bitsStored,
      pixelRepresentation: f.pixelRepresentation,
      modality: series.modality,
    };
  }
  get sliceCount(): number {
    return this.geometry.canonicalDims[0];
  }
  async readCanonicalSlice(k: number, out?: Float64Array): Promise<Float64Array> {
    const g = this.geometry;
    checkSliceIndex(g, k);
    const buf = sliceBuffer(g, out);
    const [rows, cols] = [g.canonicalDims[1], g.canonicalDims[2]];
    const ni = this.series.dims[0];
    if (g.axes.slice.inputAxis === 2) {
      const kk = g.sliceInputIndex[k]!;
      const plane = await decodeSeriesSlice(this.series, kk);
      const s = this.series.slices[kk]!;
      gatherSlice(plane, sliceWalk(g, k, [1, ni, 0]), rows, cols, s.slope, s.intercept, buf);
      return buf;
    }
    return this.gatherAcrossFrames(k, buf);
  }
  readCanonicalPlane(k: number, out?: VoxelArray): Promise<CanonicalPlane | null> {
    const g = this.geometry;
    checkSliceIndex(g, k);
    if (g.axes.slice.inputAxis !== 2) return Promise.resolve(null);
    const kk = g.sliceInputIndex[k]!;
    const frame = extractSeriesFrame(this.series, kk);
    const s = this.series.slices[kk]!;
    const layout = { walk: sliceWalk(g, k, [1, this.series.dims[0], 0]), slope: s.slope, inter: s.intercept };
    return Promise.resolve(
      'codec' in frame ? { encoded: frame, ...layout } : { voxels: copyVoxels(frame, out), ...layout },
    );
  }
  /** Sagittal/coronal acquisitions: every canonical slice touches every frame. */
  private async gatherAcrossFrames(k: number, buf: Float64Array): Promise<Float64Array> {
    const g = this.geometry;
    const [rows, cols] = [g.canonicalDims[1], g.canonicalDims[2]];
    const ni = this.series.dims[0];
    if (!this.planes) {
      const planes: StoredPixels[] = [];
      for (let i = 0; i < this.series.slices.length; i++)
        planes.push(await decodeSeriesSlice(this.series, i));
      this.planes = planes;
    }
    const planeSize = ni * this.series.dims[1];
    const walk = sliceWalk(g, k, [1, ni, planeSize]);
    let o = 0;
    for (let r = 0; r < rows; r++) {
      let p = walk.base + r * walk.rowStep;
      for (let c = 0; c < cols; c++, p += walk.colStep) {
        const kk = Math.floor(p / planeSize);
        const s = this.series.slices[kk]!;
        buf[o++] = this.planes[kk]![p - kk * planeSize]! * s.slope + s.intercept;
      }
    }
    return buf;
  }
}

function resolveLimits(opts: OpenVolumeOptions): VolumeLimits {
  const l = { ...DEFAULT_VOLUME_LIMITS, ...opts.limits };
  for (const [k, v] of Object.entries(l)) {
    if (!(typeof v === 'number' && v > 0))
      throw new CuriaError('INVALID_ARGUMENT', `limits.${k} must be a positive number`);
  }
  return l;
}

type Detected = 'nifti' | 'dicom';

function detect(bytes: Uint8Array, what: string): Detected {
  if (bytes.length === 0) throw new CuriaError('INVALID_ARGUMENT', `${what} is empty`);
  if (isGzip(bytes) || niftiVersionOf(bytes) !== null) return 'nifti';
  if (isDicomPart10(bytes)) return 'dicom';
  throw new CuriaError(
    'INVALID_ARGUMENT',
    `${what} is not a supported volume: neither gzip, NIfTI-1/2 (sizeof_hdr 348/540) nor DICOM Part 10 ("DICM" at byte 128)`,
  );
}

async function openBytes(
  data: Uint8Array,
  owned: boolean,
  opts: OpenVolumeOptions,
  limits: VolumeLimits,
): Promise<Volume> {
  if (detect(data, 'input') === 'dicom') return openDicom([{ name: 'input', data }], opts, limits);
  const nifti = await readNifti(data, {
    limits,
    volumeIndex: opts.volumeIndex,
    owned,
    signal: opts.signal,
    ...(opts.admit ? { admit: opts.admit } : {}),
  });
  return new NiftiVolume(nifti);
}

async function openDicom(
  files: readonly { name: string; data: Uint8Array }[],
  opts: OpenVolumeOptions,
  limits: VolumeLimits,
): Promise<Volume> {
  const volume = new DicomVolume(
    assembleDicomSeries(files, { limits, seriesInstanceUid: opts.seriesInstanceUid }),
  );
  if (opts.admit) {
    const dims = volume.geometry.inputDims;
    const voxelBytes = dims[0] * dims[1] * dims[2] * VOXEL_TYPE_BYTES[volume.voxelType];
    // Axial series decode one frame per slice; others decode and keep every frame.
    const heldBytes = volume.geometry.axes.slice.inputAxis === 2 ? 0 : voxelBytes;
    await opts.admit({ format: 'dicom', dims, voxelType: volume.voxelType, voxelBytes, heldBytes });
  }
  return volume;
}

/** Reads a whole opened regular file, refusing it before reading when above the byte limit. */
async function readOpened(
  handle: FileHandle,
  size: number,
  field: string,
  refuse: Refuse,
  limits: VolumeLimits,
): Promise<Uint8Array> {
  if (size > limits.maxDecompressedBytes) {
    throw new CuriaError(
      'RESOURCE_EXHAUSTED',
      `${field}: file of ${formatBytes(size)} exceeds ${formatBytes(limits.maxDecompressedBytes)} (maxDecompressedBytes)`,
    );
  }
  try {
    return await handle.readFile();
  } catch (e) {
    throw refuse(e);
  }
}

/**
 * Reads the DICOM Part 10 files of directory `dir` (non-DICOM, hidden and non-regular entries are
 * skipped; each entry is opened with `O_NOFOLLOW | O_NONBLOCK` and checked on its handle). File
 * errors become `refuse`'s one answer (naming the field, never a path).
 */
async function readDirectory(
  dir: string,
  field: string,
  refuse: Refuse,
  limits: VolumeLimits,
  signal?: AbortSignal,
): Promise<{ name: string; data: Uint8Array }[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw refuse(e);
  }
  const names = entries
    .filter((d) => d.isFile() && !d.name.startsWith('.'))
    .map((d) => d.name)
    .sort();
  if (names.length > limits.maxFiles) {
    throw new CuriaError(
      'RESOURCE_EXHAUSTED',
      `${field}: the directory holds ${names.length} files, above the limit of ${limits.maxFiles} (maxFiles)`,
    );
  }
  const files: { name: string; data: Uint8Array }[] = [];
  let total = 0;
  for (const name of names) {
    if (signal?.aborted) throw new CuriaError('CANCELLED', 'volume opening was cancelled');
    let opened;
    try {
      opened = await openRegular(join(dir, name), refuse);
    } catch (e) {
      // Swapped for a non-regular entry since the listing (refused without a cause): not part of
      // the series. An entry that cannot be opened refuses the whole ref.
      if (isCuriaError(e) && e.cause === undefined) continue;
      throw e;
    }
    let data: Uint8Array;
    try {
      data = await readOpened(opened.handle, opened.size, field, refuse, limits);
    } finally {
      await opened.handle.close().catch(() => undefined);
    }
    total += data.length;
    if (total > limits.maxDecompressedBytes) {
      throw new CuriaError(
        'RESOURCE_EXHAUSTED',
        `${field}: the directory's files exceed ${formatBytes(limits.maxDecompressedBytes)} (maxDecompressedBytes)`,
      );
    }
    // Directories may carry non-DICOM files (README, checksums): skip them.
    if (isDicomPart10(data)) files.push({ name, data });
  }
  if (files.length === 0)
    throw new CuriaError('INVALID_ARGUMENT', `${field}: the directory contains no DICOM Part 10 files`);
  return files;
}

/** Reads an opened file or directory as a volume. */
async function openHandle(
  ref: Pick<AllowedRef, 'kind' | 'handle' | 'size' | 'path' | 'field' | 'refuse'>,
  opts: OpenVolumeOptions,
  limits: VolumeLimits,
): Promise<Volume> {
  if (ref.kind === 'directory')
    return openDicom(await readDirectory(ref.path, ref.field, ref.refuse, limits, opts.signal), opts, limits);
  return openBytes(await readOpened(ref.handle, ref.size, ref.field, ref.refuse, limits), true, opts, limits);
}

/**
 * Opens a NIfTI volume or a DICOM series: detects the format from content, validates sizes
 * against the limits before allocating, parses header and geometry. Errors are CuriaErrors
 * (INVALID_ARGUMENT, UNIMPLEMENTED, RESOURCE_EXHAUSTED, NOT_FOUND, OUT_OF_RANGE, CANCELLED).
 */
export async function openVolume(source: VolumeSource, opts: OpenVolumeOptions = {}): Promise<Volume> {
  const limits = resolveLimits(opts);
  if (opts.signal?.aborted) {
    if (source.kind === 'ref') await source.ref.handle.close().catch(() => undefined);
    throw new CuriaError('CANCELLED', 'volume opening was cancelled');
  }
  switch (source.kind) {
    case 'bytes':
      return openBytes(source.data, false, opts, limits);
    case 'files': {
      const files = source.files;
      if (files.length === 0) throw new CuriaError('INVALID_ARGUMENT', 'files is empty');
      const kinds = files.map((f, i) => detect(f.data, `file #${i}`));
      if (kinds.every((k) => k === 'dicom')) return openDicom(files, opts, limits);
      if (files.length === 1) return openBytes(files[0]!.data, false, opts, limits);
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `files mix NIfTI and DICOM or hold several NIfTI files (${files.length} files); send one volume`,
      );
    }
    case 'path': {
      // A local path (CLI, benches): opened the same way as a ref; file errors never echo the path.
      const refuse: Refuse = (cause) =>
        new CuriaError('NOT_FOUND', 'the volume path does not exist or is not a readable file', { cause });
      const opened = await openRegular(source.path, refuse, { directories: true, follow: true });
      try {
        return await openHandle({ ...opened, path: source.path, field: 'path', refuse }, opts, limits);
      } finally {
        await opened.handle.close().catch(() => undefined);
      }
    }
    case 'ref':
      try {
        return await openHandle(source.ref, opts, limits);
      } finally {
        await source.ref.handle.close().catch(() => undefined);
      }
  }
}
