import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { isCuriaError } from '@curia/errors';
import { sharedPathOrSkip } from '@curia/tensors';
import { openVolume } from '@curia/volume';
import { writeDicom } from '@curia/volume/testing';
import { data, log } from 'dcmjs';
import type * as DicomParser from 'dicom-parser';
import { afterEach, describe, expect, it, vi } from 'vitest';

import type { SegClass } from './classes.js';
import {
  dicomSegOf,
  naturalizedHeader,
  newDicomUid,
  SEGMENT_CATEGORY_CODE,
  SEGMENTATION_SOP_CLASS_UID,
  type DicomSegInput,
  type SourceInstance,
} from './dicom-seg.js';

const dicomParser = createRequire(import.meta.url)('dicom-parser') as typeof DicomParser;

const CT_IMAGE = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
// 13 × 11 = 143 pixels: frames do not end on a byte boundary, so packing across frames is exercised.
const COLS = 13;
const ROWS = 11;
const SLICES = 6;
const PATIENT_ID = 'PID-SEG-0001';
const PATIENT_NAME = 'SEGTEST^ANNA';

interface Series {
  readonly files: Uint8Array[];
  /** SOPInstanceUID of input slice k. */
  readonly sopUids: string[];
  readonly study: string;
  readonly series: string;
  readonly frameOfRef: string;
}

const arrayBuffer = (b: Uint8Array): ArrayBuffer => new Uint8Array(b).buffer;

/**
 * A CT series of SLICES files, file k = input slice k. Rows run toward −y (IOP 1,0,0 / 0,−1,0),
 * so the slice normal is −z and slice k sits at z = −2.5·k: input order is descending z.
 * writeDicom writes no SOP/study/frame-of-reference UIDs; dcmjs adds them, as a scanner would.
 */
function syntheticSeries(): Series {
  const study = newDicomUid();
  const series = newDicomUid();
  const frameOfRef = newDicomUid();
  const sopUids: string[] = [];
  const files = Array.from({ length: SLICES }, (_, k) => {
    const sop = newDicomUid();
    sopUids.push(sop);
    const base = writeDicom({
      transferSyntaxUid: EXPLICIT_LE,
      seriesInstanceUid: series,
      rows: ROWS,
      cols: COLS,
      bitsAllocated: 16,
      pixelRepresentation: 1,
      iop: [1, 0, 0, 0, -1, 0],
      ipp: [-5, 4, -2.5 * k],
      pixelSpacing: [0.8, 0.7],
      pixelData: new Uint8Array(ROWS * COLS * 2),
      patientName: PATIENT_NAME,
      patientId: PATIENT_ID,
    });
    const dict = data.DicomMessage.readFile(arrayBuffer(base));
    dict.upsertTag('00080016', 'UI', [CT_IMAGE]);
    dict.upsertTag('00080018', 'UI', [sop]);
    dict.upsertTag('0020000D', 'UI', [study]);
    dict.upsertTag('00200052', 'UI', [frameOfRef]);
    dict.meta['00020003'] = { vr: 'UI', Value: [sop] };
    return new Uint8Array(dict.write());
  });
  return { files, sopUids, study, series, frameOfRef };
}

const CLASSES: SegClass[] = [
  { value: 7, name: 'spleen' },
  { value: 3, name: 'liver' },
];

/** Label map (i = column fastest): liver on slices 1–2, spleen on 2 and 4, value 9 (no class) on 5. */
function labelMap(): Uint8Array {
  const labels = new Uint8Array(COLS * ROWS * SLICES);
  const box = (k: number, v: number, c0: number, c1: number, r0: number, r1: number) => {
    for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) labels[k * COLS * ROWS + r * COLS + c] = v;
  };
  box(1, 3, 2, 9, 3, 8);
  box(2, 3, 0, 5, 0, 4);
  box(2, 7, 6, 13, 5, 11);
  box(4, 7, 3, 4, 2, 9);
  box(5, 9, 0, 13, 0, 11);
  return labels;
}

function segInput(
  sources: SourceInstance[],
  labels: Uint8Array,
  extra: Partial<DicomSegInput> = {},
): DicomSegInput {
  return {
    sources,
    labels,
    dims: [COLS, ROWS, SLICES],
    classes: CLASSES,
    algorithm: { name: 'curia-seg-test', version: '1.2.3' },
    ...extra,
  };
}

/** One decoded SEG frame (via dicom-parser, independently of the dcmjs that wrote it). */
interface ParsedFrame {
  readonly segment: number;
  readonly sopInstanceUid: string;
  readonly sopClassUid: string;
  readonly ipp: number[];
  readonly bits: Uint8Array;
}

function parseSeg(bytes: Uint8Array): { ds: DicomParser.DataSet; frames: ParsedFrame[] } {
  const ds = dicomParser.parseDicom(bytes);
  const rows = ds.uint16('x00280010')!;
  const cols = ds.uint16('x00280011')!;
  const n = ds.intString('x00280008')!;
  const pixel = ds.elements.x7fe00010!;
  expect(pixel.length % 2).toBe(0);
  expect(pixel.length).toBeGreaterThanOrEqual(Math.ceil((n * rows * cols) / 8));
  const items = ds.elements.x52009230!.items!;
  expect(items).toHaveLength(n);
  const frames = items.map((item, f): ParsedFrame => {
    const g = item.dataSet!;
    const source = g.elements.x00089124!.items![0]!.dataSet!.elements.x00082112!.items![0]!.dataSet!;
    const position = g.elements.x00209113!.items![0]!.dataSet!;
    const bits = new Uint8Array(rows * cols);
    for (let p = 0; p < bits.length; p++) {
      const bit = f * rows * cols + p;
      bits[p] = (bytes[pixel.dataOffset + (bit >> 3)]! >> (bit & 7)) & 1;
    }
    return {
      segment: g.elements.x0062000a!.items![0]!.dataSet!.uint16('x0062000b')!,
      sopInstanceUid: source.string('x00081155')!,
      sopClassUid: source.string('x00081150')!,
      ipp: position.string('x00200032')!.split('\\').map(Number),
      bits,
    };
  });
  return { ds, frames };
}

function readWithDcmjs(bytes: Uint8Array): {
  meta: Record<string, data.ElementJson>;
  ds: Record<string, unknown>;
} {
  const dict = data.DicomMessage.readFile(arrayBuffer(bytes));
  return { meta: dict.meta, ds: data.DicomMetaDictionary.naturalizeDataset(dict.dict) };
}

/** Items of a naturalized sequence (dcmjs gives one-item sequences as a proxied array). */
const seq = (v: unknown): Record<string, unknown>[] =>
  (Array.isArray(v) ? v : [v]) as Record<string, unknown>[];

const errorOf = (f: () => unknown): Error => {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
};

describe('dicomSegOf', () => {
  const src = syntheticSeries();
  const sources = src.files.map((f) => ({ dataset: naturalizedHeader(f) }));
  const labels = labelMap();
  const seg = dicomSegOf(segInput(sources, labels));

  it('writes a BINARY SEG in the source study and frame of reference (read back with dcmjs)', () => {
    const { meta, ds } = readWithDcmjs(seg);
    expect(ds.Modality).toBe('SEG');
    expect(ds.SOPClassUID).toBe(SEGMENTATION_SOP_CLASS_UID);
    expect(meta['00020002']!.Value).toEqual([SEGMENTATION_SOP_CLASS_UID]);
    expect(meta['00020003']!.Value).toEqual([ds.SOPInstanceUID]);
    expect(meta['00020010']!.Value).toEqual([EXPLICIT_LE]);
    expect(ds.SegmentationType).toBe('BINARY');
    expect([ds.BitsAllocated, ds.BitsStored, ds.Rows, ds.Columns]).toEqual([1, 1, ROWS, COLS]);
    // spleen on slices 2, 4; liver on 1, 2; value 9 is no class; slices 0 and 3 are empty.
    expect(ds.NumberOfFrames).toBe(4);

    expect(ds.StudyInstanceUID).toBe(src.study);
    expect(ds.FrameOfReferenceUID).toBe(src.frameOfRef);
    expect(ds.PatientID).toBe(PATIENT_ID);
    expect(JSON.stringify(ds.PatientName)).toContain(PATIENT_NAME);
    for (const uid of [ds.SeriesInstanceUID, ds.SOPInstanceUID]) {
      expect(uid).toMatch(/^2\.25\.[1-9]\d*$/);
      expect(String(uid).length).toBeLessThanOrEqual(64);
    }
    expect(ds.SeriesInstanceUID).not.toBe(src.series);
    expect(ds.SpecificCharacterSet).toBe('ISO_IR 192');
    expect(ds.ContentLabel).toBe('CURIA_SEG');
    expect(ds.SeriesDescription).toBe('curia-seg-test segmentation');

    const segments = seq(ds.SegmentSequence);
    expect(
      segments.map((s) => [s.SegmentNumber, s.SegmentLabel, s.SegmentAlgorithmType, s.SegmentAlgorithmName]),
    ).toEqual([
      [1, 'spleen', 'AUTOMATIC', 'curia-seg-test'],
      [2, 'liver', 'AUTOMATIC', 'curia-seg-test'],
    ]);
    for (const [s, c] of segments.map((s, i) => [s, CLASSES[i]!] as const)) {
      expect(seq(s.SegmentedPropertyCategoryCodeSequence)[0]).toMatchObject(SEGMENT_CATEGORY_CODE);
      expect(seq(s.SegmentedPropertyTypeCodeSequence)[0]).toMatchObject({
        CodeValue: String(c.value),
        CodingSchemeDesignator: '99CURIA',
        CodeMeaning: c.name,
      });
      expect(s.RecommendedDisplayCIELabValue).toHaveLength(3);
    }

    const refSeries = seq(ds.ReferencedSeriesSequence);
    expect(refSeries).toHaveLength(1);
    expect(refSeries[0]!.SeriesInstanceUID).toBe(src.series);
    const refs = seq(refSeries[0]!.ReferencedInstanceSequence);
    expect(refs.map((r) => r.ReferencedSOPInstanceUID)).toEqual(src.sopUids);
    expect(refs.every((r) => r.ReferencedSOPClassUID === CT_IMAGE)).toBe(true);

    const shared = seq(ds.SharedFunctionalGroupsSequence)[0]!;
    expect(seq(shared.PlaneOrientationSequence)[0]!.ImageOrientationPatient).toEqual([1, 0, 0, 0, -1, 0]);
    const measures = seq(shared.PixelMeasuresSequence)[0]!;
    expect(measures.PixelSpacing).toEqual([0.8, 0.7]);
    expect(measures.SpacingBetweenSlices).toBeCloseTo(2.5, 6);

    const perFrame = seq(ds.PerFrameFunctionalGroupsSequence);
    expect(perFrame).toHaveLength(4);
    for (const g of perFrame) {
      const derivation = seq(g.DerivationImageSequence)[0]!;
      const source = seq(derivation.SourceImageSequence)[0]!;
      expect(src.sopUids).toContain(source.ReferencedSOPInstanceUID);
      expect([1, 2]).toContain(seq(g.SegmentIdentificationSequence)[0]!.ReferencedSegmentNumber);
    }
  });

  it('frames decode (dicom-parser) to the label map, each on its source slice and position', () => {
    const { ds, frames } = parseSeg(seg);
    expect(ds.string('x00080060')).toBe('SEG');
    expect(ds.string('x00080016')).toBe(SEGMENTATION_SOP_CLASS_UID);
    expect(frames.map((f) => [f.segment, src.sopUids.indexOf(f.sopInstanceUid)])).toEqual([
      [1, 2],
      [1, 4],
      [2, 1],
      [2, 2],
    ]);
    const plane = COLS * ROWS;
    const rebuilt = new Uint8Array(labels.length);
    for (const f of frames) {
      const k = src.sopUids.indexOf(f.sopInstanceUid);
      expect(f.sopClassUid).toBe(CT_IMAGE);
      expect(f.ipp[0]).toBeCloseTo(-5, 6);
      expect(f.ipp[1]).toBeCloseTo(4, 6);
      expect(f.ipp[2]).toBeCloseTo(-2.5 * k, 6);
      const value = CLASSES[f.segment - 1]!.value;
      f.bits.forEach((b, p) => {
        if (b) rebuilt[k * plane + p] = value;
      });
    }
    const expected = labels.map((v) => (v === 3 || v === 7 ? v : 0));
    expect(Buffer.from(rebuilt).equals(Buffer.from(expected))).toBe(true);
  });

  it('puts sources given in any order into input slice order', () => {
    const shuffled = [3, 0, 5, 1, 4, 2].map((k) => sources[k]!);
    const { frames } = parseSeg(dicomSegOf(segInput(shuffled, labels)));
    expect(frames.map((f) => [f.segment, src.sopUids.indexOf(f.sopInstanceUid)])).toEqual([
      [1, 2],
      [1, 4],
      [2, 1],
      [2, 2],
    ]);
  });

  it('an empty label map gives one all-zero frame; demo output says DEMO', () => {
    const bytes = dicomSegOf(
      segInput(sources, new Uint8Array(labels.length), { demo: true, seriesDescription: 'organs' }),
    );
    const { ds } = readWithDcmjs(bytes);
    expect(ds.NumberOfFrames).toBe(1);
    expect(ds.SeriesDescription).toBe('DEMO organs');
    expect(ds.ContentLabel).toBe('DEMO_CURIA_SEG');
    expect(ds.ImageComments).toContain('DEMO');
    expect(seq(ds.SegmentSequence)).toHaveLength(2);
    const { frames } = parseSeg(bytes);
    expect(frames.map((f) => [f.segment, src.sopUids.indexOf(f.sopInstanceUid)])).toEqual([[1, 0]]);
    expect(frames[0]!.bits.every((b) => b === 0)).toBe(true);
  });

  it('keeps names single-valued LO: no backslash or control characters, at most 64 characters', () => {
    const classes = [
      { value: 7, name: 'left\\kidney\tupper' },
      { value: 3, name: 'x'.repeat(80) },
    ];
    const { ds } = readWithDcmjs(dicomSegOf(segInput(sources, labels, { classes })));
    expect(seq(ds.SegmentSequence).map((s) => s.SegmentLabel)).toEqual(['left kidney upper', 'x'.repeat(64)]);
  });

  it('rejects inconsistent inputs, naming attributes but never values', () => {
    const cases: [DicomSegInput, RegExp][] = [
      [segInput(sources, labels.subarray(1)), /labels hold/],
      [segInput(sources.slice(1), labels), /5 source instances for 6 slices/],
      [segInput(sources, labels, { dims: [ROWS, COLS, SLICES] }), /is 13×11 \(columns × rows\)/],
      [
        segInput(
          sources.map((s, k) => (k === 3 ? { dataset: { ...s.dataset, StudyInstanceUID: '' } } : s)),
          labels,
        ),
        /source instance #3: StudyInstanceUID is missing/,
      ],
      [
        segInput(
          sources.map((s, k) => (k === 2 ? { dataset: { ...s.dataset, FrameOfReferenceUID: '1.2.3' } } : s)),
          labels,
        ),
        /source instance #2: FrameOfReferenceUID differs/,
      ],
      [segInput([...sources.slice(0, 5), sources[0]!], labels), /repeats an earlier SOPInstanceUID/],
      [
        segInput(sources, labels, { classes: [{ value: 0, name: 'x' }] }),
        /value must be an integer in 1\.\.255/,
      ],
    ];
    for (const [input, message] of cases) {
      const e = errorOf(() => dicomSegOf(input));
      expect(isCuriaError(e) && e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(message);
      expect(e.message).not.toContain(PATIENT_ID);
      expect(e.message).not.toContain(src.study);
    }
    expect(isCuriaError(errorOf(() => naturalizedHeader(new Uint8Array(200))))).toBe(true);
  });
});

describe('logging', () => {
  const methods = ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const;
  afterEach(() => {
    vi.restoreAllMocks();
    log.setLevel(log.getLevel(), false); // rebind dcmjs's logger to the real console
  });

  it('prints nothing, although dcmjs warns with the value of a patient attribute it truncates', () => {
    const spies = methods.map((m) => vi.spyOn(console, m).mockImplementation(() => undefined));
    log.setLevel(log.getLevel(), false); // loglevel binds console methods when its level is set
    // PatientSex is a CS (16 characters at most): dcmjs truncates it with a warning quoting it.
    const marker = 'PHI-MARKER-0123456789';
    const src = syntheticSeries();
    const sources = src.files.map((f) => ({ dataset: { ...naturalizedHeader(f), PatientSex: marker } }));
    dicomSegOf(segInput(sources, labelMap()));
    expect(spies.flatMap((s) => s.mock.calls)).toEqual([]);

    // The same dataset written without the writer's silencing: dcmjs quotes the value.
    data.datasetToDict({ ...sources[0]!.dataset, _meta: {} });
    expect(JSON.stringify(spies.flatMap((s) => s.mock.calls))).toContain(marker);
  });
});

describe('shared JPEG 2000 CT series', () => {
  it('naturalizedHeader reads headers without pixel data; the SEG lines up with @curia/volume', async () => {
    const dir = sharedPathOrSkip('data/totalsegmentator/example_ct_dicom');
    if (!dir) return;
    const names = (await readdir(dir)).sort();
    const files = await Promise.all(names.map(async (n) => new Uint8Array(await readFile(join(dir, n)))));
    const headers = files.map(naturalizedHeader);
    expect(headers).toHaveLength(20);
    for (const [i, h] of headers.entries()) {
      expect('PixelData' in h).toBe(false);
      expect([h.Rows, h.Columns, h.BitsAllocated]).toEqual([512, 512, 16]);
      // Pixel data is never read: the header parses the same with the file cut at PixelData.
      const pixel = dicomParser.parseDicom(files[i]!, { untilTag: 'x7fe00010' }).elements.x7fe00010!;
      const cut = naturalizedHeader(files[i]!.subarray(0, pixel.dataOffset));
      expect(cut.SOPInstanceUID).toBe(h.SOPInstanceUID);
      expect(cut.ImagePositionPatient).toEqual(h.ImagePositionPatient);
    }
    // These de-identified files blank SOPInstanceUID, StudyInstanceUID and SeriesInstanceUID in the
    // dataset: the SOP instance comes from the file meta; a SEG without the study is refused.
    expect(new Set(headers.map((h) => h.SOPInstanceUID)).size).toBe(20);
    expect(headers.every((h) => h.SOPClassUID === CT_IMAGE)).toBe(true);

    const dims: [number, number, number] = [512, 512, 20];
    const plane = 512 * 512;
    const labels = new Uint8Array(plane * 20);
    for (const [k, v, r0, c0] of [
      [3, 1, 200, 180],
      [4, 1, 210, 190],
      [5, 1, 220, 200],
      [10, 2, 100, 300],
    ] as const) {
      for (let r = r0; r < r0 + 40; r++)
        labels.fill(v, k * plane + r * 512 + c0, k * plane + r * 512 + c0 + 60);
    }
    const input = (sources: SourceInstance[]): DicomSegInput => ({
      sources,
      labels,
      dims,
      classes: [
        { value: 1, name: 'organ A' },
        { value: 2, name: 'organ B' },
      ],
      algorithm: { name: 'curia-seg-test', version: '0' },
    });
    const e = errorOf(() => dicomSegOf(input(headers.map((dataset) => ({ dataset })))));
    expect(e.message).toMatch(/StudyInstanceUID is missing/);

    const study = newDicomUid();
    const series = newDicomUid();
    const sources = headers.map((h) => ({
      dataset: { ...h, StudyInstanceUID: study, SeriesInstanceUID: series },
    }));
    const bytes = dicomSegOf(input(sources));
    const { ds, frames } = parseSeg(bytes);
    expect(ds.string('x0020000d')).toBe(study);
    expect(ds.string('x00200052')).toBe(headers[0]!.FrameOfReferenceUID);

    // Frame f's position is input slice k's in @curia/volume's grid, and its bits are slice k's labels.
    const volume = await openVolume({
      kind: 'files',
      files: names.map((name, i) => ({ name, data: files[i]! })),
    });
    expect(volume.geometry.inputDims).toEqual(dims);
    expect(volume.geometry.inputFrame).toBe('LPS');
    const a = volume.geometry.inputAffine;
    const byUid = new Map(headers.map((h) => [h.SOPInstanceUID, h]));
    expect(frames.map((f) => f.segment)).toEqual([1, 1, 1, 2]);
    [3, 4, 5, 10].forEach((k, f) => {
      const frame = frames[f]!;
      [0, 1, 2].forEach((x) => {
        expect(frame.ipp[x]).toBeCloseTo(a[4 * x + 3]! + k * a[4 * x + 2]!, 3);
        expect((byUid.get(frame.sopInstanceUid)!.ImagePositionPatient as number[])[x]).toBeCloseTo(
          frame.ipp[x]!,
          3,
        );
      });
      const slice = labels.subarray(k * plane, (k + 1) * plane);
      expect(frame.bits.every((b, p) => b === (slice[p] === frame.segment ? 1 : 0))).toBe(true);
    });
  });
});
