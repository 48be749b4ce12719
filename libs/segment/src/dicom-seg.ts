import { randomUUID } from 'node:crypto';

import { CuriaError } from '@curia/errors';
import { data, derivations, log, type NaturalizedDataset } from 'dcmjs';

import { ClassTable, type SegClass } from './classes.js';

/**
 * DICOM Segmentation (SEG) output: a label map on a DICOM series' input grid becomes one BINARY
 * Segmentation instance that references the source series, written by dcmjs (its
 * `derivations.Segmentation` builds the SEG modules, per-frame functional groups and bit
 * packing; `data.datasetToDict(...).write()` writes the Part-10 file).
 */

/** What the writer needs of one source instance (one per input slice). */
export interface SourceInstance {
  /**
   * The dcmjs-naturalized header of the source file ({@link naturalizedHeader}): attribute
   * keywords → values, pixel data dropped.
   */
  readonly dataset: Readonly<Record<string, unknown>>;
}

/** Input of {@link dicomSegOf}. */
export interface DicomSegInput {
  /**
   * The source series' instances, one per input slice, in any order: they are put in input slice
   * order k the way `@curia/volume` orders a DICOM series (ascending ImagePositionPatient along
   * the slice normal, row × column direction), so label slice k overlays the k-th of them.
   */
  readonly sources: readonly SourceInstance[];
  /**
   * Label map on the input grid in NIfTI order (i fastest = DICOM column, then j = row, then
   * k = slice): class values; values not listed in `classes` are background.
   */
  readonly labels: Uint8Array;
  /** [columns, rows, slices]. */
  readonly dims: readonly [number, number, number];
  /** Classes (value 1..255 → name); segment numbers 1..n follow this order. */
  readonly classes: readonly SegClass[];
  /** SeriesDescription (default `<algorithm name> segmentation`). */
  readonly seriesDescription?: string;
  /** Demo weights: SeriesDescription, ContentLabel and ImageComments say DEMO. */
  readonly demo?: boolean;
  /** Recorded as SegmentAlgorithmName, ManufacturerModelName and SoftwareVersions. */
  readonly algorithm: { readonly name: string; readonly version: string };
}

/** Segmentation Storage SOP Class. */
export const SEGMENTATION_SOP_CLASS_UID = '1.2.840.10008.5.1.4.1.1.66.4';

/**
 * Every segment's SegmentedPropertyCategoryCodeSequence: (SCT 123037004, "Anatomical
 * Structure"), the generic category of DICOM CID 7150 (SNOMED CT's code for what SRT called
 * T-D000A). Classes are free-text names here, so no finer category is claimed.
 */
export const SEGMENT_CATEGORY_CODE = {
  CodeValue: '123037004',
  CodingSchemeDesignator: 'SCT',
  CodeMeaning: 'Anatomical Structure',
} as const;

/**
 * Coding scheme of each segment's SegmentedPropertyTypeCodeSequence: a private ("99" prefix,
 * PS3.16 8.2) scheme whose code value is the class's label value and whose meaning is its name.
 */
export const SEGMENT_TYPE_SCHEME = '99CURIA';

/** Largest unpacked frame buffer (frames × rows × columns bytes) dcmjs is asked to allocate. */
export const MAX_SEG_UNPACKED_BYTES = 1 << 30;

const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

/** Display colours (sRGB 0..1), cycled over segments. */
const PALETTE: readonly (readonly [number, number, number])[] = [
  [0.9, 0.1, 0.1],
  [0.1, 0.7, 0.2],
  [0.15, 0.35, 0.95],
  [0.95, 0.8, 0.1],
  [0.7, 0.2, 0.8],
  [0.1, 0.8, 0.8],
  [0.95, 0.5, 0.1],
  [0.55, 0.35, 0.2],
];

/**
 * A new DICOM UID under the UUID-derived root 2.25 (PS3.5 B.2): "2.25." followed by a random
 * (version 4) UUID read as one unsigned integer — at most 44 characters, no registered root needed.
 */
export function newDicomUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replaceAll('-', '')}`).toString()}`;
}

/**
 * Runs `f` with dcmjs's logger silenced: its warnings quote element values (a PatientSex or
 * PatientBirthDate it truncates, an unknown attribute and its value), which may be PHI.
 */
function quietly<T>(f: () => T): T {
  const level = log.getLevel();
  log.setLevel('silent', false);
  try {
    return f();
  } finally {
    log.setLevel(level, false);
  }
}

function arrayBufferOf(bytes: Uint8Array): ArrayBuffer {
  if (
    bytes.buffer instanceof ArrayBuffer &&
    bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength
  )
    return bytes.buffer;
  return new Uint8Array(bytes).buffer; // a copy (a Buffer's slice() would be a view)
}

/**
 * Parses a source DICOM Part-10 file's header with dcmjs and naturalizes it (keywords → values),
 * stopping before PixelData: compressed frames are neither read nor decoded. An empty
 * SOPClassUID/SOPInstanceUID (some de-identified files blank them) is taken from the file meta's
 * MediaStorageSOPClassUID/MediaStorageSOPInstanceUID, which name the same instance.
 * INVALID_ARGUMENT when the bytes are not a readable DICOM file.
 */
export function naturalizedHeader(file: Uint8Array): Record<string, unknown> {
  return quietly(() => {
    let dict: data.DicomDict;
    try {
      dict = data.DicomMessage.readFile(arrayBufferOf(file), { untilTag: '7FE00010' });
    } catch (e) {
      const msg = e instanceof Error ? e.message : 'parse error';
      throw new CuriaError('INVALID_ARGUMENT', `not a readable DICOM file (${msg.slice(0, 160)})`, {
        cause: e,
      });
    }
    const ds: Record<string, unknown> = data.DicomMetaDictionary.naturalizeDataset(dict.dict);
    delete ds.PixelData;
    const meta = (tag: string): string | undefined => {
      const v = dict.meta[tag]?.Value?.[0];
      return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
    };
    if (text(ds, 'SOPClassUID') === undefined) ds.SOPClassUID = meta('00020002');
    if (text(ds, 'SOPInstanceUID') === undefined) ds.SOPInstanceUID = meta('00020003');
    return ds;
  });
}

/** A single-valued attribute as a trimmed, non-empty string. */
function text(ds: Readonly<Record<string, unknown>>, key: string): string | undefined {
  const raw: unknown = ds[key];
  const v: unknown = Array.isArray(raw) ? (raw as unknown[])[0] : raw;
  const s = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.replace(/\0/g, '').trim() : '';
  return s === '' ? undefined : s;
}

/** The first `n` values of a numeric (DS/IS/US) attribute, or undefined. */
function numbers(ds: Readonly<Record<string, unknown>>, key: string, n: number): number[] | undefined {
  const raw: unknown = ds[key];
  const values: unknown[] = Array.isArray(raw) ? (raw as unknown[]) : raw == null ? [] : [raw];
  const out = values
    .slice(0, n)
    .map((v) => (typeof v === 'number' || typeof v === 'string' ? Number(v) : NaN));
  return out.length === n && out.every(Number.isFinite) ? out : undefined;
}

/** A value for an LO element: no backslash (the value delimiter) or control characters, ≤ 64 chars. */
function lo(s: string): string {
  return Array.from(s, (ch) => (ch === '\\' || ch.charCodeAt(0) < 0x20 ? ' ' : ch))
    .join('')
    .trim()
    .slice(0, 64);
}

const cross = (a: readonly number[], b: readonly number[]): number[] => [
  a[1]! * b[2]! - a[2]! * b[1]!,
  a[2]! * b[0]! - a[0]! * b[2]!,
  a[0]! * b[1]! - a[1]! * b[0]!,
];
const dot = (a: readonly number[], b: readonly number[]): number =>
  a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;

interface Slice {
  readonly dataset: Readonly<Record<string, unknown>>;
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  readonly ipp: number[];
  readonly pos: number;
}

interface SeriesFacts {
  /** Sources in input slice order k. */
  readonly slices: readonly Slice[];
  readonly iop: number[];
  readonly pixelSpacing: number[];
  /** Mean spacing along the normal (undefined for one slice). */
  readonly spacing: number | undefined;
}

/** Checks the sources against each other and the grid, and sorts them into input slice order. */
function seriesFacts(input: DicomSegInput): SeriesFacts {
  const [cols, rows, n] = input.dims;
  if (input.sources.length === 0) throw new CuriaError('INVALID_ARGUMENT', 'sources is empty');
  if (input.sources.length !== n) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${input.sources.length} source instances for ${n} slices: give one per input slice`,
    );
  }
  const first = input.sources[0]!.dataset;
  const required = (ds: Readonly<Record<string, unknown>>, i: number, key: string): string => {
    const v = text(ds, key);
    if (v === undefined) throw new CuriaError('INVALID_ARGUMENT', `source instance #${i}: ${key} is missing`);
    return v;
  };
  const requiredNumbers = (ds: Readonly<Record<string, unknown>>, i: number, key: string, count: number) => {
    const v = numbers(ds, key, count);
    if (!v) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `source instance #${i}: ${key} is missing or malformed (needs ${count} numbers)`,
      );
    }
    return v;
  };
  const shared = ['StudyInstanceUID', 'SeriesInstanceUID', 'FrameOfReferenceUID'].map((key) => ({
    key,
    value: required(first, 0, key),
  }));
  const iop = requiredNumbers(first, 0, 'ImageOrientationPatient', 6);
  const normal = cross(iop.slice(0, 3), iop.slice(3, 6));
  const norm = Math.hypot(normal[0]!, normal[1]!, normal[2]!);
  if (!(norm > 0.5)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      'source instance #0: ImageOrientationPatient rows and columns are parallel',
    );
  }
  const pixelSpacing = requiredNumbers(first, 0, 'PixelSpacing', 2);
  const seen = new Set<string>();
  const slices = input.sources.map(({ dataset: ds }, i): Slice => {
    for (const { key, value } of shared) {
      if (required(ds, i, key) !== value) {
        throw new CuriaError('INVALID_ARGUMENT', `source instance #${i}: ${key} differs from instance #0's`);
      }
    }
    if ((numbers(ds, 'NumberOfFrames', 1)?.[0] ?? 1) !== 1) {
      throw new CuriaError(
        'UNIMPLEMENTED',
        `source instance #${i} is multi-frame; one frame per instance is supported`,
      );
    }
    const r = requiredNumbers(ds, i, 'Rows', 1)[0];
    const c = requiredNumbers(ds, i, 'Columns', 1)[0];
    if (r !== rows || c !== cols) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `source instance #${i} is ${c}×${r} (columns × rows); the label map is ${cols}×${rows}`,
      );
    }
    const o = requiredNumbers(ds, i, 'ImageOrientationPatient', 6);
    if (o.some((v, a) => Math.abs(v - iop[a]!) > 1e-4)) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `source instance #${i}: ImageOrientationPatient differs from instance #0's`,
      );
    }
    const sopInstanceUid = required(ds, i, 'SOPInstanceUID');
    if (seen.has(sopInstanceUid)) {
      throw new CuriaError('INVALID_ARGUMENT', `source instance #${i} repeats an earlier SOPInstanceUID`);
    }
    seen.add(sopInstanceUid);
    const ipp = requiredNumbers(ds, i, 'ImagePositionPatient', 3);
    return {
      dataset: ds,
      sopClassUid: required(ds, i, 'SOPClassUID'),
      sopInstanceUid,
      ipp,
      pos: dot(ipp, normal) / norm,
    };
  });
  slices.sort((a, b) => a.pos - b.pos);
  for (let k = 1; k < slices.length; k++) {
    if (slices[k]!.pos - slices[k - 1]!.pos < 1e-4) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        'two source instances share the same ImagePositionPatient along the slice normal',
      );
    }
  }
  const spacing = n > 1 ? (slices[n - 1]!.pos - slices[0]!.pos) / (n - 1) : undefined;
  return { slices, iop, pixelSpacing, spacing };
}

/**
 * The normalized multiframe reference dcmjs's Segmentation derives from, built from the sources
 * in input slice order (frame number k + 1 = slice k). dcmjs's own normalizer would re-sort the
 * frames and needs every instance's pixel data (16-bit, two or more slices); this needs neither.
 */
function referenceDataset(f: SeriesFacts): NaturalizedDataset {
  const first = f.slices[0]!.dataset;
  const thickness = numbers(first, 'SliceThickness', 1)?.[0];
  return {
    // Patient, study and frame-of-reference attributes: dcmjs copies the ones the SEG IOD needs.
    ...first,
    _vrMap: { PixelData: 'OB' },
    _meta: {},
    NumberOfFrames: f.slices.length,
    SharedFunctionalGroupsSequence: {
      PlaneOrientationSequence: { ImageOrientationPatient: f.iop },
      PixelMeasuresSequence: {
        PixelSpacing: f.pixelSpacing,
        ...(thickness !== undefined && thickness > 0
          ? { SliceThickness: thickness }
          : f.spacing !== undefined
            ? { SliceThickness: f.spacing }
            : {}),
        ...(f.spacing !== undefined ? { SpacingBetweenSlices: f.spacing } : {}),
      },
    },
    PerFrameFunctionalGroupsSequence: f.slices.map((s) => ({
      PlanePositionSequence: { ImagePositionPatient: s.ipp },
    })),
    ReferencedSeriesSequence: {
      SeriesInstanceUID: text(first, 'SeriesInstanceUID'),
      ReferencedInstanceSequence: f.slices.map((s) => ({
        ReferencedSOPClassUID: s.sopClassUid,
        ReferencedSOPInstanceUID: s.sopInstanceUid,
      })),
    },
    PixelData: new ArrayBuffer(0),
  };
}

/**
 * Writes a label map on a DICOM series' input grid as a DICOM Segmentation (Part-10 file,
 * explicit VR little endian): BINARY, one segment per class (SegmentNumber 1..n in `classes`
 * order, SegmentLabel = class name, AUTOMATIC with the algorithm's name), one frame per
 * (segment, slice) where that class has foreground — segment-major, slices ascending; an
 * entirely empty label map gives one all-zero frame of segment 1 on slice 0, as a SEG needs a
 * frame. Each frame references its source instance (DerivationImageSequence/SourceImageSequence)
 * and carries its ImagePositionPatient; ReferencedSeriesSequence lists every source instance.
 * Patient, study and FrameOfReferenceUID come from the sources; SeriesInstanceUID,
 * SOPInstanceUID and DimensionOrganizationUID are new ({@link newDicomUid}).
 * INVALID_ARGUMENT for inconsistent inputs (named by attribute, never by value),
 * RESOURCE_EXHAUSTED past {@link MAX_SEG_UNPACKED_BYTES}.
 */
export function dicomSegOf(input: DicomSegInput): Uint8Array {
  const table = new ClassTable(input.classes);
  const [cols, rows, n] = input.dims;
  if (![cols, rows, n].every((d) => Number.isInteger(d) && d > 0)) {
    throw new CuriaError('INVALID_ARGUMENT', `dims ${input.dims.join('×')} must be positive integers`);
  }
  const plane = cols * rows;
  if (input.labels.length !== plane * n) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `labels hold ${input.labels.length} voxels; dims ${cols}×${rows}×${n} need ${plane * n}`,
    );
  }
  const facts = seriesFacts(input);

  // Which class values occur on which slice.
  const present = new Uint8Array(n * 256);
  for (let k = 0; k < n; k++) {
    const base = k * plane;
    for (let p = 0; p < plane; p++) present[k * 256 + input.labels[base + p]!] = 1;
  }
  const framesOf = table.classes.map((c) => {
    const ks: number[] = [];
    for (let k = 0; k < n; k++) if (present[k * 256 + c.value]) ks.push(k);
    return ks;
  });
  if (framesOf.every((ks) => ks.length === 0)) framesOf[0] = [0];
  const frames = framesOf.reduce((s, ks) => s + ks.length, 0);
  if (frames * plane > MAX_SEG_UNPACKED_BYTES) {
    throw new CuriaError(
      'RESOURCE_EXHAUSTED',
      `${frames} SEG frames of ${cols}×${rows} exceed ${MAX_SEG_UNPACKED_BYTES} unpacked bytes`,
    );
  }

  const name = lo(input.algorithm.name) || 'Curia';
  const demo = input.demo === true;
  const description = lo(`${demo ? 'DEMO ' : ''}${input.seriesDescription ?? `${name} segmentation`}`);
  const bytes = quietly(() => {
    const seg = new derivations.Segmentation([referenceDataset(facts)], {
      SeriesInstanceUID: newDicomUid(),
      SOPInstanceUID: newDicomUid(),
      SeriesDescription: description,
      Manufacturer: 'Curia',
      ManufacturerModelName: name,
      SoftwareVersions: lo(input.algorithm.version) || '0',
      ImageComments: demo ? 'DEMO WEIGHTS - NOT FOR CLINICAL USE' : 'NOT FOR CLINICAL USE',
      includeSliceSpacing: true,
    });
    const ds = seg.dataset;
    ds.SpecificCharacterSet = 'ISO_IR 192'; // dcmjs writes strings as UTF-8
    ds.ContentLabel = demo ? 'DEMO_CURIA_SEG' : 'CURIA_SEG';
    ds.ContentDescription = lo(`${demo ? 'DEMO ' : ''}${name} ${input.algorithm.version} segmentation`);
    ds.ContentCreatorName = '';
    ds.CodingSchemeIdentificationSequence = [
      {
        CodingSchemeDesignator: SEGMENT_TYPE_SCHEME,
        CodingSchemeName: 'Curia segmentation classes (code value = label value)',
        CodingSchemeResponsibleOrganization: 'Curia',
      },
    ];
    const dimensionUid = newDicomUid();
    ds.DimensionOrganizationSequence = { DimensionOrganizationUID: dimensionUid };
    for (const d of ds.DimensionIndexSequence as Record<string, unknown>[])
      d.DimensionOrganizationUID = dimensionUid;

    seg.setNumberOfFrames(frames);
    table.classes.forEach((c, s) => {
      const ks = framesOf[s]!;
      const rgb = PALETTE[s % PALETTE.length]!;
      seg.addSegmentFromLabelmap(
        {
          SegmentLabel: lo(c.name) || `class ${c.value}`,
          SegmentedPropertyCategoryCodeSequence: { ...SEGMENT_CATEGORY_CODE },
          SegmentedPropertyTypeCodeSequence: {
            CodeValue: String(c.value),
            CodingSchemeDesignator: SEGMENT_TYPE_SCHEME,
            CodeMeaning: lo(c.name) || `class ${c.value}`,
          },
          SegmentAlgorithmType: 'AUTOMATIC',
          SegmentAlgorithmName: name,
          RecommendedDisplayCIELabValue: data.Colors.rgb2DICOMLAB(rgb).map((v) =>
            Math.min(65535, Math.max(0, Math.round(v))),
          ),
        },
        ks.map((k) => input.labels.subarray(k * plane, (k + 1) * plane)),
        c.value,
        ks.map((k) => k + 1),
      );
    });
    seg.bitPackPixelData();
    ds._meta = { TransferSyntaxUID: { vr: 'UI', Value: [EXPLICIT_VR_LITTLE_ENDIAN] } };
    return data.datasetToDict(ds).write();
  });
  return new Uint8Array(bytes);
}
