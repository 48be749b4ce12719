import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { sharedPathOrSkip } from '@curia/tensors';

import { dicomParser } from './dicom-parser.js';
import {
  DCMTK_JPEG_LOSSLESS_57,
  DCMTK_JPEG_LOSSLESS_70,
  DCMTK_RLE,
  FIXTURE_COLS,
  FIXTURE_ROWS,
  fixtureValue,
} from '../testing/dcmtk-fixtures.js';
import { encodeRle, writeDicom, type DicomWriteOptions } from '../testing/dicom-writer.js';
import { preprocessSlices, preprocessSlicesOnPool } from '../preprocess/preprocess.js';
import { SlicePool } from '../preprocess/slice-pool.js';
import { CURIA_DEFAULT_PREPROCESS_SPEC } from '../preprocess/spec.js';
import { openVolume, type Volume } from '../volume.js';

const EXPLICIT = '1.2.840.10008.1.2.1';
const IMPLICIT = '1.2.840.10008.1.2';
const RLE = '1.2.840.10008.1.2.5';
const SERIES = '1.2.826.0.1.3680043.2.1125.1';
const PATIENT_NAME = 'SECRETNAME^ALICE';
const PATIENT_ID = 'PIDSECRET42';

/** Physical phantom on a 4 (L) x 5 (P) x 6 (S) grid of 1 mm voxels: value = 100 z + 10 y + x. */
const NX = 4;
const NY = 5;
const NZ = 6;
const phantom = (x: number, y: number, z: number): number => 100 * z + 10 * y + x - 300;

function samples(values: number[], bitsStored = 16): Uint8Array {
  const out = Buffer.alloc(values.length * 2);
  // Garbage above BitsStored must be masked away by the reader.
  const junk = bitsStored < 16 ? 0xa000 : 0;
  values.forEach((v, i) => out.writeUInt16LE(((v & ((1 << bitsStored) - 1)) | junk) & 0xffff, 2 * i));
  return out;
}

type Override = Partial<DicomWriteOptions> & { bitsStoredForData?: number };

/** Axial series: rows -> +y (P), cols -> +x (L), one file per z. Stored = value + 5 (intercept -5). */
function axialSeries(ts = EXPLICIT, over: (z: number) => Override = () => ({})): Uint8Array[] {
  const files: Uint8Array[] = [];
  for (let z = 0; z < NZ; z++) {
    const o = over(z);
    const bs = o.bitsStoredForData ?? 16;
    const values: number[] = [];
    for (let r = 0; r < NY; r++) for (let c = 0; c < NX; c++) values.push(phantom(c, r, z) + 5);
    const raw = samples(values, bs);
    files.push(
      writeDicom({
        transferSyntaxUid: ts,
        seriesInstanceUid: SERIES,
        rows: NY,
        cols: NX,
        bitsAllocated: 16,
        bitsStored: bs,
        pixelRepresentation: 1,
        iop: [1, 0, 0, 0, 1, 0],
        ipp: [0, 0, z],
        pixelSpacing: [1, 1],
        intercept: -5,
        pixelData: ts === RLE ? encodeRle(raw, 2) : raw,
        encapsulated: ts === RLE,
        patientName: PATIENT_NAME,
        patientId: PATIENT_ID,
        ...o,
      }),
    );
  }
  return files;
}

/** Sagittal series of the same phantom: columns -> +y (P), rows -> -z (I), slices along x. */
function sagittalSeries(): Uint8Array[] {
  const files: Uint8Array[] = [];
  for (let x = 0; x < NX; x++) {
    const values: number[] = [];
    for (let r = 0; r < NZ; r++) for (let c = 0; c < NY; c++) values.push(phantom(x, c, NZ - 1 - r));
    files.push(
      writeDicom({
        transferSyntaxUid: EXPLICIT,
        seriesInstanceUid: SERIES,
        rows: NZ,
        cols: NY,
        bitsAllocated: 16,
        pixelRepresentation: 1,
        iop: [0, 1, 0, 0, 0, -1],
        ipp: [x, 0, NZ - 1],
        pixelSpacing: [1, 1],
        pixelData: samples(values),
      }),
    );
  }
  return files;
}

const asFiles = (files: Uint8Array[]): { name: string; data: Uint8Array }[] =>
  files.map((data, i) => ({ name: `f${i}`, data })).reverse();

/** The phantom in canonical order, checked against the hand-written formula. */
async function expectPhantom(v: Volume): Promise<void> {
  expect(v.geometry.canonicalDims).toEqual([NZ, NY, NX]);
  let bad = 0;
  for (let k = 0; k < NZ; k++) {
    const s = await v.readCanonicalSlice(k);
    for (let r = 0; r < NY; r++) for (let c = 0; c < NX; c++) if (s[r * NX + c] !== phantom(c, r, k)) bad++;
  }
  expect(bad).toBe(0);
}

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string; ms: number }> {
  const t0 = performance.now();
  try {
    await p;
  } catch (e) {
    const err = e as { code: string; message: string };
    expect(err.message).not.toContain(PATIENT_NAME.split('^')[0]);
    expect(err.message).not.toContain(PATIENT_ID);
    return { code: err.code, message: err.message, ms: performance.now() - t0 };
  }
  throw new Error('expected a rejection');
}

describe('DICOM series reader (synthetic phantom)', () => {
  it('sorts shuffled axial files and applies the rescale (explicit VR LE)', async () => {
    const v = await openVolume({ kind: 'files', files: asFiles(axialSeries()) });
    expect(v.geometry.inputAxcodes).toBe('LPS');
    expect(v.geometry.inputFrame).toBe('LPS');
    await expectPhantom(v);
  });

  it('implicit VR LE and RLE lossless give the same voxels', async () => {
    await expectPhantom(await openVolume({ kind: 'files', files: asFiles(axialSeries(IMPLICIT)) }));
    await expectPhantom(await openVolume({ kind: 'files', files: asFiles(axialSeries(RLE)) }));
  });

  it('masks BitsStored 12 and sign-extends negative values', async () => {
    const v = await openVolume({
      kind: 'files',
      files: asFiles(axialSeries(EXPLICIT, () => ({ bitsStoredForData: 12 }))),
    });
    expect(v.info.format === 'dicom' && v.info.bitsStored).toBe(12);
    expect(v.info.format === 'dicom' && v.info.modality).toBe('CT');
    await expectPhantom(v);
  });

  it('a sagittal series reorients to the same canonical volume', async () => {
    const v = await openVolume({ kind: 'files', files: asFiles(sagittalSeries()) });
    expect(v.geometry.inputAxcodes).toBe('PIR');
    await expectPhantom(v);
  });

  it('reads a directory, ignoring non-DICOM files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'curia-volume-'));
    try {
      await Promise.all(axialSeries().map((b, i) => writeFile(join(dir, `img${i}.dcm`), b)));
      await writeFile(join(dir, 'README.txt'), 'not an image');
      await expectPhantom(await openVolume({ kind: 'path', path: dir }));
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('rejects an unsupported transfer syntax with UNIMPLEMENTED naming it', async () => {
    const r = await rejection(
      openVolume({ kind: 'files', files: asFiles(axialSeries('1.2.840.10008.1.2.4.50')) }),
    );
    expect(r.code).toBe('UNIMPLEMENTED');
    expect(r.message).toContain('1.2.840.10008.1.2.4.50');
    expect(r.message).toContain('JPEG Baseline');
  });

  it('rejects mixed series unless one is named', async () => {
    const files = axialSeries(EXPLICIT, (z) =>
      z === 2 ? { seriesInstanceUid: `${SERIES}.9`, ipp: [0, 0, 10] } : {},
    );
    const r = await rejection(openVolume({ kind: 'files', files: asFiles(files) }));
    expect(r.code).toBe('INVALID_ARGUMENT');
    expect(r.message).toContain('mix 2 series');
    const picked = await openVolume(
      { kind: 'files', files: asFiles(files) },
      { seriesInstanceUid: `${SERIES}.9` },
    );
    expect(picked.sliceCount).toBe(1);
    const missing = await rejection(
      openVolume({ kind: 'files', files: asFiles(files) }, { seriesInstanceUid: '1.2.3' }),
    );
    expect(missing.code).toBe('NOT_FOUND');
  });

  it('rejects non-uniform spacing (a missing slice)', async () => {
    const files = axialSeries().filter((_, z) => z !== 3);
    const r = await rejection(openVolume({ kind: 'files', files: asFiles(files) }));
    expect(r.code).toBe('INVALID_ARGUMENT');
    expect(r.message).toContain('non-uniform slice spacing');
  });

  it('rejects gantry tilt', async () => {
    const files = axialSeries(EXPLICIT, (z) => ({ ipp: [0, 0.3 * z, z] }));
    const r = await rejection(openVolume({ kind: 'files', files: asFiles(files) }));
    expect(r.code).toBe('INVALID_ARGUMENT');
    expect(r.message).toContain('gantry tilt');
  });

  it('rejects duplicate slice positions', async () => {
    const files = axialSeries(EXPLICIT, (z) => ({ ipp: [0, 0, z === 1 ? 0 : z] }));
    const r = await rejection(openVolume({ kind: 'files', files: asFiles(files) }));
    expect(r.code).toBe('INVALID_ARGUMENT');
    expect(r.message).toContain('same ImagePositionPatient');
  });

  it('rejects a truncated native file when its slice is read', async () => {
    const files = axialSeries();
    files[0] = files[0]!.subarray(0, files[0]!.length - 10);
    const r = await rejection(
      (async () => {
        const v = await openVolume({ kind: 'files', files: asFiles(files) });
        for (let k = 0; k < v.sliceCount; k++) await v.readCanonicalSlice(k);
      })(),
    );
    expect(r.code).toBe('INVALID_ARGUMENT');
    expect(r.message).toMatch(/truncated|could not be parsed/);
  });
});

describe('codecs against DCMTK-encoded files', () => {
  for (const [name, b64, ts] of [
    ['JPEG lossless process 14', DCMTK_JPEG_LOSSLESS_57, '1.2.840.10008.1.2.4.57'],
    ['JPEG lossless SV1', DCMTK_JPEG_LOSSLESS_70, '1.2.840.10008.1.2.4.70'],
    ['RLE lossless', DCMTK_RLE, RLE],
  ] as const) {
    it(`${name} decodes to the written values`, async () => {
      const v = await openVolume({ kind: 'bytes', data: Buffer.from(b64, 'base64') });
      expect(v.info.format === 'dicom' && v.info.transferSyntaxUids).toEqual([ts]);
      const s = await v.readCanonicalSlice(0);
      let bad = 0;
      for (let r = 0; r < FIXTURE_ROWS; r++) {
        for (let c = 0; c < FIXTURE_COLS; c++) if (s[r * FIXTURE_COLS + c] !== fixtureValue(r, c)) bad++;
      }
      expect(bad).toBe(0);
    });
  }

  it('8-bit unsigned native pixels with a rescale', async () => {
    const px = Uint8Array.from({ length: 12 }, (_, i) => i * 20);
    const data = writeDicom({
      transferSyntaxUid: EXPLICIT,
      seriesInstanceUid: SERIES,
      rows: 3,
      cols: 4,
      bitsAllocated: 8,
      pixelRepresentation: 0,
      iop: [1, 0, 0, 0, 1, 0],
      ipp: [0, 0, 0],
      pixelSpacing: [1, 1],
      slope: 2,
      intercept: -100,
      pixelData: px,
    });
    const v = await openVolume({ kind: 'bytes', data });
    expect(v.voxelType).toBe('uint8');
    expect(Array.from(await v.readCanonicalSlice(0))).toEqual(Array.from(px, (p) => p * 2 - 100));
  });
});

describe('DICOM JPEG 2000 (shared series)', () => {
  it('rejects a truncated JPEG 2000 frame quickly', async () => {
    const dir = sharedPathOrSkip('data/totalsegmentator/example_ct_dicom');
    if (!dir) return;
    const names = (await readdir(dir)).sort();
    const files = await Promise.all(
      names.map(async (n) => ({ name: n, data: new Uint8Array(await readFile(join(dir, n))) })),
    );
    // Re-encapsulate file 0 with only the first half of its codestream.
    const orig = files[0]!.data;
    const ds = dicomParser.parseDicom(orig);
    const frag = ds.elements.x7fe00010!.fragments![0]!;
    const keep = (frag.length >> 2) * 2;
    const head = orig.subarray(0, frag.position - 8);
    const itemHdr = Buffer.alloc(8);
    itemHdr.writeUInt16LE(0xfffe, 0);
    itemHdr.writeUInt16LE(0xe000, 2);
    itemHdr.writeUInt32LE(keep, 4);
    const delim = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
    files[0] = {
      name: files[0]!.name,
      data: Buffer.concat([head, itemHdr, orig.subarray(frag.position, frag.position + keep), delim]),
    };
    const v = await openVolume({ kind: 'files', files });
    const r = await rejection(
      (async () => {
        for (let k = 0; k < v.sliceCount; k++) await v.readCanonicalSlice(k);
      })(),
    );
    expect(r.code).toBe('INVALID_ARGUMENT');
    expect(r.message).toContain('JPEG 2000 frame is truncated');
    expect(r.ms).toBeLessThan(5000);
    // Decoded on a pool thread, it is the same status and message, not an INTERNAL failure.
    const pool = new SlicePool(1);
    try {
      const pooled = await rejection(
        (async () => {
          for await (const s of preprocessSlicesOnPool(v, pool)) s.release();
        })(),
      );
      expect(pooled).toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect(pooled.message).toMatch(/^DICOM file #\d+: .*JPEG 2000 frame is truncated/);
    } finally {
      await pool.close();
    }
  });
});

describe('DICOM series on a slice pool', () => {
  const spec = { ...CURIA_DEFAULT_PREPROCESS_SPEC, targetSize: [16, 12] as [number, number] };
  const pool = new SlicePool(2);
  afterAll(() => pool.close());

  /** The pool first, twice: its transfers must leave the volume's files intact for later reads. */
  async function samePixels(v: Volume): Promise<void> {
    const runs: Buffer[][] = [];
    for (let r = 0; r < 2; r++) {
      const got: Buffer[] = [];
      for await (const s of preprocessSlicesOnPool(v, pool, { spec })) got.push(Buffer.from(s.data));
      runs.push(got);
    }
    const want: Buffer[] = [];
    for await (const s of preprocessSlices(v, { spec })) want.push(Buffer.from(s.pixels.buffer));
    expect(runs[0]).toEqual(want);
    expect(runs[1]).toEqual(want);
  }

  it('decodes compressed frames on the threads: native, RLE and sagittal series match the in-thread engine', async () => {
    const cases: [Uint8Array[], string | null][] = [
      [axialSeries(), 'stored'],
      [axialSeries(RLE), 'rle'],
      [sagittalSeries(), null], // canonical slices cut across frames: read in the caller's thread
    ];
    for (const [files, kind] of cases) {
      // Node Buffers (small ones share a pool slab), as files read from disk are: a frame sent to a
      // thread must be a copy, never a view whose transfer would detach the shared buffer.
      const v = await openVolume({
        kind: 'files',
        files: files.map((data, i) => ({ name: `${i}.dcm`, data: Buffer.from(data) })),
      });
      const plane = await v.readCanonicalPlane?.(0);
      // RLE frames travel encoded (the thread decodes them), native ones as stored values.
      expect(plane ? ('encoded' in plane ? plane.encoded.codec : 'stored') : null).toBe(kind);
      await samePixels(v);
    }
  });

  it('matches the in-thread engine on the shared JPEG 2000 series', async () => {
    const dir = sharedPathOrSkip('data/totalsegmentator/example_ct_dicom');
    if (!dir) return;
    const names = (await readdir(dir)).sort().slice(0, 6);
    const files = await Promise.all(
      names.map(async (n) => ({ name: n, data: await readFile(join(dir, n)) })),
    );
    const v = await openVolume({ kind: 'files', files });
    const plane = await v.readCanonicalPlane?.(0);
    expect(plane && 'encoded' in plane && plane.encoded.codec).toBe('jpeg2000');
    await samePixels(v);
  });
});
