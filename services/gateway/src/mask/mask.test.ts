import { describe, expect, it } from 'vitest';

import { runLengthMask } from '@curia/client';
import { CuriaError } from '@curia/errors';
import { common } from '@curia/proto';
import {
  canonicalToInputIndex,
  int16Bytes,
  openVolume,
  preprocessSlices,
  writeNifti,
  type Geometry,
} from '@curia/volume';

import { CanonicalMaskSampler } from './canonical-mask.js';
import { checkMaskGrid, decodeInputMask, type InputGridMask } from './input-mask.js';

const DIMS: [number, number, number] = [24, 20, 10];
const N = DIMS[0] * DIMS[1] * DIMS[2];
/** Cube of the phantom, in input voxel indices (asymmetric, so every flip and permutation shows). */
const inCube = (i: number, j: number, k: number): boolean =>
  i >= 4 && i <= 11 && j >= 12 && j <= 17 && k >= 2 && k <= 6;
/** NIfTI storage offset (i fastest). */
const fortran = (i: number, j: number, k: number): number => i + DIMS[0] * (j + DIMS[1] * k);

/** Voxel-to-RAS affines: RAS storage, LPS storage, and a permuted one (i → A, j → S, k → L). */
const AFFINES: Record<string, number[]> = {
  RAS: [1.5, 0, 0, -10, 0, 2, 0, 5, 0, 0, 3, 20, 0, 0, 0, 1],
  LPS: [-1.5, 0, 0, 10, 0, -2, 0, -5, 0, 0, 3, 20, 0, 0, 0, 1],
  ASL: [0, 0, -3, 7, 1.5, 0, 0, -2, 0, 2, 0, 1, 0, 0, 0, 1],
};

function phantom(affine: number[]): { image: Uint8Array; labels: Uint8Array; labelNifti: Uint8Array } {
  const hu = new Int16Array(N);
  const labels = new Uint8Array(N);
  for (let k = 0; k < DIMS[2]; k++)
    for (let j = 0; j < DIMS[1]; j++)
      for (let i = 0; i < DIMS[0]; i++) {
        const inside = inCube(i, j, k);
        hu[fortran(i, j, k)] = inside ? 1000 : -100;
        labels[fortran(i, j, k)] = inside ? 7 : 0;
      }
  const image = writeNifti({ dims: DIMS, datatypeCode: 4, bitpix: 16, voxelBytes: int16Bytes(hu), affine });
  const labelNifti = writeNifti({
    dims: DIMS,
    datatypeCode: 2,
    bitpix: 8,
    voxelBytes: labels,
    affine,
    gzip: true,
  });
  return { image, labels, labelNifti };
}

/** The label map as an RLE mask, encoded by the client library (independently of the decoder). */
const rleOf = (labels: Uint8Array): common.RunLengthMask =>
  runLengthMask(DIMS, (i, j, k) => labels[fortran(i, j, k)] !== 0, 'cube');

/** What PreprocessService sends for a geometry (geometry.proto's axis order: col, row, slice). */
function canonicalProto(g: Geometry): common.CanonicalGeometry {
  const { col, row, slice } = g.axes;
  const affine = { m: [...g.inputAffine], frame: common.CoordinateFrame.RAS };
  return {
    input: { dims: [...g.inputDims], spacingMm: [...g.inputSpacing], affine, axcodes: g.inputAxcodes },
    canonical: undefined,
    canonicalToInputAxes: [col.inputAxis, row.inputAxis, slice.inputAxis],
    canonicalAxisFlipped: [col.flip, row.flip, slice.flip],
  };
}

/** Nearest-resized canonical mask computed from geometry.proto's documented rule and the library's index map. */
function expectedMask(g: Geometry, labels: Uint8Array, k: number, size: number): Uint8Array {
  const [, rows, cols] = g.canonicalDims;
  const near = (d: number, n: number): number =>
    Math.min(n - 1, Math.max(0, Math.round((d + 0.5) * (n / size) - 0.5)));
  const out = new Uint8Array(size * size);
  for (let r = 0; r < size; r++)
    for (let c = 0; c < size; c++) {
      const [i, j, kk] = canonicalToInputIndex(g, k, near(r, rows), near(c, cols));
      out[r * size + c] = labels[fortran(i, j, kk)] ? 1 : 0;
    }
  return out;
}

const rejects = async (p: Promise<unknown>, code: string, re: RegExp): Promise<void> => {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CuriaError);
  expect((err as CuriaError).code).toBe(code);
  expect((err as CuriaError).message).toMatch(re);
};

describe('decodeInputMask', () => {
  const limits = { maxVoxels: N };
  it('rejects malformed masks naming the field', async () => {
    const rle = rleOf(phantom(AFFINES.RAS!).labels);
    await rejects(
      decodeInputMask({ mask: { $case: 'rle', value: { ...rle, counts: [...rle.counts, 1] } } }, limits),
      'INVALID_ARGUMENT',
      /start\.mask\.rle\.counts sum to 4801.*4800 voxels/,
    );
    await rejects(
      decodeInputMask({ mask: { $case: 'rle', value: { ...rle, dims: [24, 200] } } }, limits),
      'INVALID_ARGUMENT',
      /start\.mask\.rle\.dims must be the 3 input grid dims/,
    );
    await rejects(
      decodeInputMask({ mask: { $case: 'rle', value: rle } }, { maxVoxels: N - 1 }),
      'RESOURCE_EXHAUSTED',
      /CURIA_GATEWAY_MAX_MASK_VOXELS/,
    );
    const dense = (dtype: common.DType, data: Uint8Array, shape = DIMS): common.InputMask => ({
      mask: { $case: 'dense', value: { dtype, shape, data } },
    });
    await rejects(
      decodeInputMask(dense(common.DType.F32, new Uint8Array(N)), limits),
      'INVALID_ARGUMENT',
      /start\.mask\.dense\.dtype must be U8 or BOOL/,
    );
    await rejects(
      decodeInputMask(dense(common.DType.U8, new Uint8Array(N - 1)), limits),
      'INVALID_ARGUMENT',
      /start\.mask\.dense\.data holds 4799 bytes/,
    );
    await rejects(
      decodeInputMask(dense(common.DType.BOOL, new Uint8Array(N).fill(2)), limits),
      'INVALID_ARGUMENT',
      /BOOL elements must be 0 or 1/,
    );
    await rejects(
      decodeInputMask({ mask: { $case: 'nifti', value: new Uint8Array(400) } }, limits),
      'INVALID_ARGUMENT',
      /^start\.mask\.nifti: /,
    );
  });

  it('decodes rle, dense and NIfTI to the same grid, and checks it against the study grid', async () => {
    const { labels, labelNifti } = phantom(AFFINES.LPS!);
    const fromRle = await decodeInputMask({ mask: { $case: 'rle', value: rleOf(labels) } }, limits);
    const fromNifti = await decodeInputMask({ mask: { $case: 'nifti', value: labelNifti } }, limits);
    const c = new Uint8Array(N);
    for (let i = 0; i < DIMS[0]; i++)
      for (let j = 0; j < DIMS[1]; j++)
        for (let k = 0; k < DIMS[2]; k++) c[(i * DIMS[1] + j) * DIMS[2] + k] = labels[fortran(i, j, k)]!;
    const fromDense = await decodeInputMask(
      { mask: { $case: 'dense', value: { dtype: common.DType.U8, shape: DIMS, data: c } } },
      limits,
    );
    const inside = 8 * 6 * 5;
    for (const m of [fromRle, fromNifti, fromDense]) {
      expect(m.dims).toEqual(DIMS);
      expect(m.inside).toBe(inside);
      expect([...m.voxels].map((v) => (v ? 1 : 0))).toEqual([...c].map((v) => (v ? 1 : 0)));
    }
    const input = (dims: number[], m: number[], frame: common.CoordinateFrame): common.VolumeGeometry => ({
      dims,
      spacingMm: [],
      affine: { m, frame },
      axcodes: '',
    });
    const lpsStudy = AFFINES.LPS!.map((v, i) => (i < 8 ? -v : v)); // the same grid, DICOM-style LPS affine
    expect(() => checkMaskGrid(fromNifti, input(DIMS, lpsStudy, common.CoordinateFrame.LPS))).not.toThrow();
    expect(() => checkMaskGrid(fromRle, input(DIMS, [], common.CoordinateFrame.UNSPECIFIED))).not.toThrow();
    expect(() => checkMaskGrid(fromRle, input([24, 20, 11], [], 0))).toThrow(
      /start\.mask\.rle\.dims \[24, 20, 10\] does not match the study's input grid dims \[24, 20, 11\]/,
    );
    const shifted = AFFINES.LPS!.map((v, i) => (i === 3 ? v + 0.01 : v));
    expect(() => checkMaskGrid(fromNifti, input(DIMS, shifted, common.CoordinateFrame.RAS))).toThrow(
      /start\.mask\.nifti is not on the study's input grid: .* 0\.0100 mm/,
    );
  });
});

describe('CanonicalMaskSampler', () => {
  for (const [name, affine] of Object.entries(AFFINES)) {
    it(`lines the mask up with the preprocessed pixels (${name} storage)`, async () => {
      const { image, labels } = phantom(affine);
      const volume = await openVolume({ kind: 'bytes', data: image });
      const g = volume.geometry;
      const mask = await decodeInputMask({ mask: { $case: 'rle', value: rleOf(labels) } }, { maxVoxels: N });
      const sampler = new CanonicalMaskSampler(mask, canonicalProto(g), 512, 512);
      expect(sampler.sliceCount).toBe(volume.sliceCount);
      let coveredSlices = 0;
      for await (const s of preprocessSlices(volume)) {
        const k = s.canonicalIndex;
        expect(sampler.inputSliceIndex(k)).toBe(s.inputSliceIndex);
        const got = sampler.sample(k);
        const want = expectedMask(g, labels, k, 512);
        expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
        const any = got.some((v) => v !== 0);
        expect(sampler.covers(k)).toBe(any);
        if (!any) continue;
        coveredSlices++;
        // The bright cube after the bicubic resize and the nearest-resized mask overlap.
        let lo = Infinity;
        let hi = -Infinity;
        for (const v of s.pixels) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
        const mid = (lo + hi) / 2;
        let both = 0;
        let either = 0;
        for (let p = 0; p < got.length; p++) {
          const bright = s.pixels[p]! > mid;
          if (bright && got[p]) both++;
          if (bright || got[p]) either++;
        }
        expect(both / either).toBeGreaterThan(0.9);
      }
      // The cube spans 5 input slices along whichever axis became the axial one.
      const sliceAxis = g.axes.slice.inputAxis;
      expect(coveredSlices).toBe(sliceAxis === 0 ? 8 : sliceAxis === 1 ? 6 : 5);
    });
  }

  it('is consistent with the mask it was given', () => {
    const mask: InputGridMask = { dims: [2, 3, 4], voxels: new Uint8Array(24), inside: 0, dimsField: 'x' };
    const geo: common.CanonicalGeometry = {
      input: undefined,
      canonical: undefined,
      canonicalToInputAxes: [0, 0, 1],
      canonicalAxisFlipped: [false, false, false],
    };
    expect(() => new CanonicalMaskSampler(mask, geo, 8, 8)).toThrow(/invalid canonical geometry/);
  });
});
