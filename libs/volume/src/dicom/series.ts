import { CuriaError } from '@curia/errors';

import { dicomParser, type DataSet } from './dicom-parser.js';
import { formatBytes, type VolumeLimits } from '../io/limits.js';
import { codecFor, type PixelCodec } from './transfer-syntax.js';
import {
  decodePixels,
  extractFrame,
  type EncodedFrame,
  type PixelFormat,
  type StoredPixels,
} from './pixel-data.js';

/** True when `bytes` carries the DICOM Part 10 preamble ("DICM" at byte 128). */
export function isDicomPart10(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 132 &&
    bytes[128] === 0x44 &&
    bytes[129] === 0x49 &&
    bytes[130] === 0x43 &&
    bytes[131] === 0x4d
  );
}

/** One input file of a series. */
export interface DicomFileInput {
  readonly name: string;
  readonly data: Uint8Array;
}

/** One slice of an assembled series, in sorted (ascending along the slice normal) order. */
export interface DicomSlice {
  readonly dataSet: DataSet;
  readonly codec: PixelCodec;
  readonly transferSyntaxUid: string;
  readonly slope: number;
  readonly intercept: number;
  /** Index of the file in the caller's input list (files are named by index in errors). */
  readonly inputIndex: number;
}

/** A validated, sorted single-series DICOM volume whose frames decode on demand. */
export interface DicomSeries {
  readonly seriesInstanceUid: string;
  /** Grid (i = column, j = row, k = sorted slice). */
  readonly dims: readonly [number, number, number];
  /** Voxel-to-LPS affine, row-major 4x4. */
  readonly affine: number[];
  readonly format: PixelFormat;
  readonly slices: readonly DicomSlice[];
  readonly transferSyntaxUids: readonly string[];
  /** Modality (0008,0060) of the first file, e.g. "CT" or "MR"; "" when absent. */
  readonly modality: string;
}

/** Options of {@link assembleDicomSeries}. */
export interface AssembleOptions {
  readonly limits: VolumeLimits;
  /** Picks one series when the files mix several. */
  readonly seriesInstanceUid?: string;
}

interface ParsedFile {
  readonly ds: DataSet;
  readonly index: number;
  readonly series: string;
}

const label = (i: number): string => `DICOM file #${i}`;

function numbers(ds: DataSet, tag: string, count: number, what: string, i: number): number[] {
  const raw = ds.string(tag);
  const parts = raw === undefined ? [] : raw.split('\\').map((s) => Number(s.trim()));
  if (parts.length < count || parts.slice(0, count).some((v) => !Number.isFinite(v))) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${label(i)}: ${what} is missing or malformed (needs ${count} numbers)`,
    );
  }
  return parts.slice(0, count);
}

function requiredUint16(ds: DataSet, tag: string, what: string, i: number): number {
  const v = ds.uint16(tag);
  if (v === undefined) throw new CuriaError('INVALID_ARGUMENT', `${label(i)}: ${what} is missing`);
  return v;
}

function optionalNumber(ds: DataSet, tag: string): number | undefined {
  const s = ds.string(tag);
  if (s === undefined || s.trim() === '') return undefined;
  const v = Number(s.split('\\')[0]!.trim());
  return Number.isFinite(v) ? v : undefined;
}

function parseFile(f: DicomFileInput, i: number): ParsedFile {
  if (f.data.length === 0) throw new CuriaError('INVALID_ARGUMENT', `${label(i)} is empty`);
  if (!isDicomPart10(f.data))
    throw new CuriaError('INVALID_ARGUMENT', `${label(i)} is not DICOM (no "DICM" at byte 128)`);
  let ds: DataSet;
  try {
    ds = dicomParser.parseDicom(f.data);
  } catch (e) {
    const ex = typeof e === 'string' ? e : (e as { exception?: unknown }).exception;
    const msg = typeof ex === 'string' ? ex : e instanceof Error ? e.message : 'parse error';
    throw new CuriaError('INVALID_ARGUMENT', `${label(i)} could not be parsed (${msg.slice(0, 160)})`, {
      cause: e,
    });
  }
  return { ds, index: i, series: ds.string('x0020000e') ?? '' };
}

function cross(a: number[], b: number[]): number[] {
  return [a[1]! * b[2]! - a[2]! * b[1]!, a[2]! * b[0]! - a[0]! * b[2]!, a[0]! * b[1]! - a[1]! * b[0]!];
}

const dot = (a: number[], b: number[]): number => a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;

/**
 * Groups, validates and sorts DICOM files into one volume: a single series (or the one named),
 * sorted by ImagePositionPatient projected on the slice normal, with uniform spacing and no
 * gantry tilt. Pixel data is not decoded here.
 */
export function assembleDicomSeries(files: readonly DicomFileInput[], opts: AssembleOptions): DicomSeries {
  if (files.length === 0) throw new CuriaError('INVALID_ARGUMENT', 'no DICOM files given');
  if (files.length > opts.limits.maxFiles) {
    throw new CuriaError(
      'RESOURCE_EXHAUSTED',
      `${files.length} DICOM files exceed the limit of ${opts.limits.maxFiles} (maxFiles)`,
    );
  }
  const parsed = files.map(parseFile);
  const bySeries = new Map<string, ParsedFile[]>();
  for (const p of parsed) {
    const list = bySeries.get(p.series);
    if (list) list.push(p);
    else bySeries.set(p.series, [p]);
  }
  let chosen: ParsedFile[];
  if (opts.seriesInstanceUid !== undefined) {
    const c = bySeries.get(opts.seriesInstanceUid);
    if (!c)
      throw new CuriaError(
        'NOT_FOUND',
        `none of the ${files.length} files belongs to the requested seriesInstanceUid`,
      );
    chosen = c;
  } else if (bySeries.size > 1) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `the files mix ${bySeries.size} series (SeriesInstanceUID); pass seriesInstanceUid to pick one`,
    );
  } else {
    chosen = parsed;
  }

  const first = chosen[0]!;
  const f0 = first.ds;
  const i0 = first.index;
  const samples = f0.uint16('x00280002') ?? 1;
  if (samples !== 1)
    throw new CuriaError(
      'UNIMPLEMENTED',
      `${label(i0)}: SamplesPerPixel ${samples}; only grayscale (1) is supported`,
    );
  const frames = optionalNumber(f0, 'x00280008') ?? 1;
  if (frames !== 1)
    throw new CuriaError(
      'UNIMPLEMENTED',
      `${label(i0)}: multi-frame images (NumberOfFrames ${frames}) are not supported`,
    );
  const bitsAllocated = requiredUint16(f0, 'x00280100', 'BitsAllocated (0028,0100)', i0);
  if (bitsAllocated !== 8 && bitsAllocated !== 16) {
    throw new CuriaError(
      'UNIMPLEMENTED',
      `${label(i0)}: BitsAllocated ${bitsAllocated}; only 8 and 16 are supported`,
    );
  }
  const format: PixelFormat = {
    rows: requiredUint16(f0, 'x00280010', 'Rows (0028,0010)', i0),
    cols: requiredUint16(f0, 'x00280011', 'Columns (0028,0011)', i0),
    bitsAllocated,
    bitsStored: f0.uint16('x00280101') ?? bitsAllocated,
    pixelRepresentation: f0.uint16('x00280103') === 1 ? 1 : 0,
  };
  if (format.rows === 0 || format.cols === 0)
    throw new CuriaError('INVALID_ARGUMENT', `${label(i0)}: Rows or Columns is 0`);
  if (format.bitsStored < 1 || format.bitsStored > bitsAllocated) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${label(i0)}: BitsStored ${format.bitsStored} is outside 1..${bitsAllocated}`,
    );
  }
  const voxelBytes = format.rows * format.cols * chosen.length * (bitsAllocated / 8);
  if (voxelBytes > opts.limits.maxVoxelBytes) {
    throw new CuriaError(
      'RESOURCE_EXHAUSTED',
      `series ${format.cols}x${format.rows}x${chosen.length} needs ${formatBytes(voxelBytes)} of voxels, above the limit of ${formatBytes(opts.limits.maxVoxelBytes)} (maxVoxelBytes)`,
    );
  }
  const iop = numbers(f0, 'x00200037', 6, 'ImageOrientationPatient (0020,0037)', i0);
  const rowCos = iop.slice(0, 3);
  const colCos = iop.slice(3, 6);
  const normal = cross(rowCos, colCos);
  const nNorm = Math.hypot(normal[0]!, normal[1]!, normal[2]!);
  if (!(nNorm > 0.5))
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${label(i0)}: ImageOrientationPatient rows and columns are parallel`,
    );
  for (let a = 0; a < 3; a++) normal[a] = normal[a]! / nNorm;
  const spacing = numbers(f0, 'x00280030', 2, 'PixelSpacing (0028,0030)', i0);
  if (!(spacing[0]! > 0 && spacing[1]! > 0))
    throw new CuriaError('INVALID_ARGUMENT', `${label(i0)}: PixelSpacing must be positive`);

  const entries = chosen.map((p) => {
    const ds = p.ds;
    const i = p.index;
    if (ds.uint16('x00280010') !== format.rows || ds.uint16('x00280011') !== format.cols) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `${label(i)}: Rows/Columns differ from the rest of the series`,
      );
    }
    if (
      (ds.uint16('x00280100') ?? 0) !== bitsAllocated ||
      (ds.uint16('x00280103') === 1 ? 1 : 0) !== format.pixelRepresentation
    ) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `${label(i)}: BitsAllocated/PixelRepresentation differ from the rest of the series`,
      );
    }
    const o = numbers(ds, 'x00200037', 6, 'ImageOrientationPatient (0020,0037)', i);
    if (o.some((v, a) => Math.abs(v - iop[a]!) > 1e-4)) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `${label(i)}: ImageOrientationPatient differs from the rest of the series`,
      );
    }
    const ipp = numbers(ds, 'x00200032', 3, 'ImagePositionPatient (0020,0032)', i);
    const ts = ds.string('x00020010')?.trim() ?? '';
    if (ts === '')
      throw new CuriaError('INVALID_ARGUMENT', `${label(i)}: TransferSyntaxUID (0002,0010) is missing`);
    const slope = optionalNumber(ds, 'x00281053') ?? 1;
    const intercept = optionalNumber(ds, 'x00281052') ?? 0;
    const slice: DicomSlice = {
      dataSet: ds,
      codec: codecFor(ts),
      transferSyntaxUid: ts,
      slope,
      intercept,
      inputIndex: i,
    };
    return { slice, ipp, pos: dot(ipp, normal) };
  });
  entries.sort((a, b) => a.pos - b.pos);

  const n = entries.length;
  let sliceSpacing: number;
  if (n === 1) {
    sliceSpacing = optionalNumber(f0, 'x00180088') ?? optionalNumber(f0, 'x00180050') ?? 1;
    if (!(sliceSpacing > 0)) sliceSpacing = 1;
  } else {
    const gaps: number[] = [];
    for (let k = 1; k < n; k++) gaps.push(entries[k]!.pos - entries[k - 1]!.pos);
    const minGap = Math.min(...gaps);
    if (minGap < 1e-4) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        'two slices share the same ImagePositionPatient along the slice normal (duplicate or multi-acquisition series)',
      );
    }
    const total = entries[n - 1]!.pos - entries[0]!.pos;
    sliceSpacing = total / (n - 1);
    const tol = Math.max(0.01, 0.01 * sliceSpacing);
    const worst = gaps.reduce((m, g) => Math.max(m, Math.abs(g - sliceSpacing)), 0);
    if (worst > tol) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `non-uniform slice spacing: gaps range ${Math.min(...gaps).toFixed(3)}..${Math.max(...gaps).toFixed(3)} mm (mean ${sliceSpacing.toFixed(3)} mm, tolerance ${tol.toFixed(3)} mm); missing slices?`,
      );
    }
    const d = [0, 1, 2].map((a) => entries[n - 1]!.ipp[a]! - entries[0]!.ipp[a]!);
    const along = dot(d, normal);
    const inPlane = Math.hypot(
      d[0]! - along * normal[0]!,
      d[1]! - along * normal[1]!,
      d[2]! - along * normal[2]!,
    );
    if (inPlane > 0.01 + 1e-3 * Math.abs(along)) {
      const deg = (Math.atan2(inPlane, Math.abs(along)) * 180) / Math.PI;
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `gantry tilt: slice positions move ${inPlane.toFixed(2)} mm in-plane over ${Math.abs(along).toFixed(2)} mm (${deg.toFixed(2)} degrees off the slice normal); tilted series must be resampled first`,
      );
    }
  }
  const o = entries[0]!.ipp;
  const [rs, cs] = [spacing[0]!, spacing[1]!];
  // prettier-ignore
  const affine = [
    rowCos[0]! * cs, colCos[0]! * rs, normal[0]! * sliceSpacing, o[0]!,
    rowCos[1]! * cs, colCos[1]! * rs, normal[1]! * sliceSpacing, o[1]!,
    rowCos[2]! * cs, colCos[2]! * rs, normal[2]! * sliceSpacing, o[2]!,
    0, 0, 0, 1,
  ];
  return {
    seriesInstanceUid: first.series,
    dims: [format.cols, format.rows, n],
    affine,
    format,
    slices: entries.map((e) => e.slice),
    transferSyntaxUids: [...new Set(entries.map((e) => e.slice.transferSyntaxUid))],
    modality: (f0.string('x00080060') ?? '').trim().toUpperCase(),
  };
}

/** Decodes sorted slice `k` of a series to stored values. */
export function decodeSeriesSlice(series: DicomSeries, k: number): Promise<StoredPixels> {
  const s = series.slices[k];
  if (!s) throw new CuriaError('OUT_OF_RANGE', `slice ${k} is outside 0..${series.slices.length - 1}`);
  return decodePixels(s.dataSet, s.codec, series.format, label(s.inputIndex));
}

/**
 * Slice `k`'s frame without decoding it: stored values when native, else the compressed frame
 * (a compact copy, transferable to a thread) for `decodeFrame`.
 */
export function extractSeriesFrame(series: DicomSeries, k: number): StoredPixels | EncodedFrame {
  const s = series.slices[k];
  if (!s) throw new CuriaError('OUT_OF_RANGE', `slice ${k} is outside 0..${series.slices.length - 1}`);
  return extractFrame(s.dataSet, s.codec, series.format, label(s.inputIndex), true);
}
