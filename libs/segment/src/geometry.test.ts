import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as nifti from 'nifti-reader-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { sharedPathOrSkip } from '@curia/tensors';
import { openVolume, writeNifti, type Geometry } from '@curia/volume';
import { writeDicom } from '@curia/volume/testing';

import { ClassTable, type SegClass } from './classes.js';
import type { ModelGrid, StudyGrid } from './grid.js';
import { InputLabelMap } from './label-map.js';
import { TokenSampler } from './sample.js';
import { tokenFractions } from './token-targets.js';

const CT = sharedPathOrSkip('data/totalsegmentator/example_ct_sm.nii.gz');
const SEG = sharedPathOrSkip('data/totalsegmentator/example_seg.nii.gz');
const NAMES = sharedPathOrSkip('data/totalsegmentator/labels_total.json');
const MODEL: ModelGrid = { imageSize: 512, patchSize: 16 };

/** A NIfTI file read with nifti-reader-js (not our reader): dims, voxels in file order (i fastest), RAS affine. */
async function readIndependently(path: string) {
  let buf = (await readFile(path)).buffer;
  if (nifti.isCompressed(buf)) buf = nifti.decompress(buf) as ArrayBuffer;
  const h = nifti.readHeader(buf);
  const img = nifti.readImage(h, buf);
  const dims = h.dims.slice(1, 4);
  const data =
    h.datatypeCode === nifti.NIFTI1.TYPE_UINT8
      ? new Uint8Array(img)
      : h.datatypeCode === nifti.NIFTI1.TYPE_INT16
        ? new Int16Array(img)
        : (() => {
            throw new Error(`unexpected datatype ${h.datatypeCode}`);
          })();
  return { dims, data, affine: h.affine.flat(), qformCode: h.qform_code, sformCode: h.sform_code };
}

/** Pushes the true class fractions of every token through the sampler into a label map on the input grid. */
async function roundTrip(image: string, labels: string, table: ClassTable, grid?: StudyGrid) {
  const vol = await openVolume({ kind: 'path', path: image });
  const lab = await openVolume({ kind: 'path', path: labels });
  const g: StudyGrid = grid ?? vol.geometry;
  const [slices, rows, cols] = vol.geometry.canonicalDims;
  expect(lab.geometry.canonicalDims).toEqual(vol.geometry.canonicalDims);
  const sampler = new TokenSampler(rows, cols, MODEL.imageSize / MODEL.patchSize, table.size);
  const out = new InputLabelMap(g, table);
  const k = table.size;
  const gg = sampler.grid * sampler.grid;
  for (let s = 0; s < slices; s++) {
    const fractions = tokenFractions(await lab.readCanonicalSlice(s), rows, cols, table, MODEL);
    const classMajor = new Float32Array(k * gg);
    for (let t = 0; t < gg; t++) for (let q = 0; q < k; q++) classMajor[q * gg + t] = fractions[t * k + q]!;
    out.put(s, sampler.sample(classMajor, 'probabilities'));
  }
  return { out, geometry: vol.geometry };
}

/** Dice of every class present in `truth`. */
function dicePerClass(
  pred: ArrayLike<number>,
  truth: ArrayLike<number>,
  table: ClassTable,
): Map<string, number> {
  const inter = new Float64Array(256);
  const a = new Float64Array(256);
  const b = new Float64Array(256);
  for (let i = 0; i < truth.length; i++) {
    const p = pred[i]!;
    const t = truth[i]!;
    a[p]!++;
    b[t]!++;
    if (p === t) inter[t]!++;
  }
  const out = new Map<string, number>();
  for (const c of table.classes)
    if (b[c.value]! > 0) out.set(c.name, (2 * inter[c.value]!) / (a[c.value]! + b[c.value]!));
  return out;
}

const mean = (m: Map<string, number>): number => [...m.values()].reduce((x, y) => x + y, 0) / m.size;

/** The organs `bench:segment` scores: large enough for a 32×32 token grid on this 3 mm CT. */
const ORGANS = ['spleen', 'kidney_right', 'kidney_left', 'liver', 'stomach'];
const organs = (m: Map<string, number>): Map<string, number> =>
  new Map([...m].filter(([n]) => ORGANS.includes(n)));
let allClassMean = NaN;

describe.skipIf(!CT || !SEG || !NAMES)('label maps from token-grid scores (geometry is exact)', () => {
  let dir: string;
  let table: ClassTable;
  let seg: Awaited<ReturnType<typeof readIndependently>>;
  let ct: Awaited<ReturnType<typeof readIndependently>>;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'curia-seg-geom-'));
    seg = await readIndependently(SEG!);
    ct = await readIndependently(CT!);
    const names = JSON.parse(await readFile(NAMES!, 'utf8')) as Record<string, string>;
    const present = [...new Set(seg.data)].filter((v) => v > 0).sort((x, y) => x - y);
    table = new ClassTable(
      present.map((value): SegClass => ({ value, name: names[String(value)] ?? String(value) })),
    );
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reproduces the reference organs on the shared CT (mean Dice ≥ 0.95) with the input affine; a flipped axis does not', async () => {
    const { out, geometry } = await roundTrip(CT!, SEG!, table);
    const dice = dicePerClass(out.voxels, seg.data, table);
    allClassMean = mean(dice);
    console.log(
      `geometry round trip: organs ${[...organs(dice)].map(([n, d]) => `${n} ${d.toFixed(3)}`).join(', ')}; ` +
        `mean over the organs ${mean(organs(dice)).toFixed(4)}; over all ${dice.size} classes ${allClassMean.toFixed(3)} ` +
        `(ribs, adrenals and other structures narrower than a token (${((3 * 101) / 32).toFixed(0)} mm) cannot be resolved)`,
    );
    expect(mean(organs(dice))).toBeGreaterThanOrEqual(0.95);
    for (const d of organs(dice).values()) expect(d).toBeGreaterThanOrEqual(0.93);
    const file = join(dir, 'mask.nii.gz');
    await writeFile(file, out.toNifti(true));
    const back = await readIndependently(file);
    expect(back.dims).toEqual(seg.dims);
    expect(back.qformCode).toBe(1);
    expect(back.sformCode).toBe(1);
    expect(Array.from(back.data)).toEqual(Array.from(out.voxels));
    back.affine.forEach((v, i) => expect(Math.abs(v - ct.affine[i]!)).toBeLessThan(1e-3));
    // Negative control: the same scores through a grid whose row axis is flipped land elsewhere.
    const flipped: Geometry = {
      ...geometry,
      axes: { ...geometry.axes, row: { ...geometry.axes.row, flip: !geometry.axes.row.flip } },
    };
    const wrong = await roundTrip(CT!, SEG!, table, flipped);
    const bad = organs(dicePerClass(wrong.out.voxels, seg.data, table));
    console.log(`negative control (row axis flipped): mean Dice over the organs ${mean(bad).toFixed(3)}`);
    expect(mean(bad)).toBeLessThan(0.3);
  });

  it('gives the same labels on a reoriented copy (axes permuted and flipped, affine adjusted)', async () => {
    // New voxel (a, b, c) = old (i = b, j = n1 - 1 - c, k = a): dims (n2, n0, n1).
    const [n0, n1, n2] = seg.dims as [number, number, number];
    const nd = [n2, n0, n1];
    const reorder = <T extends Uint8Array | Int16Array>(src: T, dst: T): T => {
      for (let c = 0; c < n1; c++)
        for (let b = 0; b < n0; b++)
          for (let a = 0; a < n2; a++) dst[a + n2 * (b + n0 * c)] = src[b + n0 * (n1 - 1 - c + n1 * a)]!;
      return dst;
    };
    // old index = P · new index: i = b, j = n1 - 1 - c, k = a.
    const P = [0, 1, 0, 0, 0, 0, -1, n1 - 1, 1, 0, 0, 0, 0, 0, 0, 1];
    const A = ct.affine;
    const affine = Array.from({ length: 16 }, (_, x) => {
      const r = Math.floor(x / 4);
      const c = x % 4;
      return [0, 1, 2, 3].reduce((s, t) => s + A[r * 4 + t]! * P[t * 4 + c]!, 0);
    });
    const segR = reorder(seg.data as Uint8Array, new Uint8Array(seg.data.length));
    const ctR = reorder(ct.data as Int16Array, new Int16Array(ct.data.length));
    const segPath = join(dir, 'seg-r.nii.gz');
    const ctPath = join(dir, 'ct-r.nii.gz');
    await writeFile(
      segPath,
      writeNifti({ dims: nd, datatypeCode: 2, bitpix: 8, voxelBytes: segR, affine, gzip: true }),
    );
    await writeFile(
      ctPath,
      writeNifti({
        dims: nd,
        datatypeCode: 4,
        bitpix: 16,
        voxelBytes: new Uint8Array(ctR.buffer),
        affine,
        gzip: true,
      }),
    );
    const { out, geometry } = await roundTrip(ctPath, segPath, table);
    expect(geometry.inputAxcodes).not.toBe('RAS');
    const dice = dicePerClass(out.voxels, segR, table);
    console.log(
      `reoriented copy (${geometry.inputAxcodes}): mean Dice over the organs ${mean(organs(dice)).toFixed(4)}`,
    );
    expect(mean(organs(dice))).toBeGreaterThanOrEqual(0.95);
    expect(mean(dice)).toBeCloseTo(allClassMean, 9);
    const back = await readIndependently(join(dir, 'ct-r.nii.gz'));
    const mask = join(dir, 'mask-r.nii');
    await writeFile(mask, out.toNifti());
    (await readIndependently(mask)).affine.forEach((v, i) =>
      expect(Math.abs(v - back.affine[i]!)).toBeLessThan(1e-3),
    );
  });

  it('gives the same labels on a DICOM copy (LPS series), with the series affine in the label map', async () => {
    // The shared CT is RAS and axis-aligned: DICOM column c = L index = n0-1-i, row r = P index = n1-1-j.
    const [n0, n1, n2] = ct.dims as [number, number, number];
    const A = ct.affine;
    expect([A[1], A[2], A[4], A[6], A[8], A[9]].every((v) => Math.abs(v!) < 1e-6)).toBe(true);
    expect(A[0]! > 0 && A[5]! > 0 && A[10]! > 0).toBe(true);
    const series = join(dir, 'dicom');
    await import('node:fs/promises').then((fs) => fs.mkdir(series));
    const segDicom = new Uint8Array(n0 * n1 * n2);
    for (let z = 0; z < n2; z++) {
      const px = new Uint8Array(n0 * n1 * 2);
      const dv = new DataView(px.buffer);
      for (let r = 0; r < n1; r++)
        for (let c = 0; c < n0; c++) {
          const src = n0 - 1 - c + n0 * (n1 - 1 - r + n1 * z);
          dv.setInt16(2 * (r * n0 + c), ct.data[src]!, true);
          segDicom[c + n0 * (r + n1 * z)] = seg.data[src]!;
        }
      // Position of pixel (0, 0): RAS of voxel (n0-1, n1-1, z), in LPS.
      const ras = [0, 1, 2].map(
        (row) => A[row * 4]! * (n0 - 1) + A[row * 4 + 1]! * (n1 - 1) + A[row * 4 + 2]! * z + A[row * 4 + 3]!,
      );
      await writeFile(
        join(series, `slice-${n2 - z}.dcm`),
        writeDicom({
          transferSyntaxUid: '1.2.840.10008.1.2.1',
          seriesInstanceUid: '1.2.3.4',
          rows: n1,
          cols: n0,
          bitsAllocated: 16,
          pixelRepresentation: 1,
          iop: [1, 0, 0, 0, 1, 0],
          ipp: [-ras[0]!, -ras[1]!, ras[2]!],
          pixelSpacing: [A[5]!, A[0]!],
          pixelData: px,
        }),
      );
    }
    // The labels on the DICOM grid, as NIfTI (RAS affine of the same grid).
    const segPath = join(dir, 'seg-dicom.nii');
    const v = await openVolume({ kind: 'path', path: series });
    expect(v.geometry.inputFrame).toBe('LPS');
    const ras = v.geometry.inputAffine.map((x, i) => (i < 8 ? -x : x));
    await writeFile(
      segPath,
      writeNifti({ dims: [n0, n1, n2], datatypeCode: 2, bitpix: 8, voxelBytes: segDicom, affine: ras }),
    );
    const { out } = await roundTrip(series, segPath, table);
    const dice = dicePerClass(out.voxels, segDicom, table);
    console.log(`DICOM copy: mean Dice over the organs ${mean(organs(dice)).toFixed(4)}`);
    expect(mean(organs(dice))).toBeGreaterThanOrEqual(0.95);
    expect(mean(dice)).toBeCloseTo(allClassMean, 9);
    // Voxel (c, r, z) of the mask is where voxel (n0-1-c, n1-1-r, z) of the NIfTI CT is.
    const mask = join(dir, 'mask-dicom.nii');
    await writeFile(mask, out.toNifti());
    const m = (await readIndependently(mask)).affine;
    for (const [c, r, z] of [
      [0, 0, 0],
      [n0 - 1, n1 - 1, n2 - 1],
      [7, 30, 11],
    ] as const) {
      const world = (M: number[], p: readonly number[]) =>
        [0, 1, 2].map(
          (row) => M[row * 4]! * p[0]! + M[row * 4 + 1]! * p[1]! + M[row * 4 + 2]! * p[2]! + M[row * 4 + 3]!,
        );
      const got = world(m, [c, r, z]);
      const want = world(A, [n0 - 1 - c, n1 - 1 - r, z]);
      got.forEach((x, i) => expect(Math.abs(x - want[i]!)).toBeLessThan(1e-3));
    }
  });
});
