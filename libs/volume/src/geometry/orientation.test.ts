import { readFile } from 'node:fs/promises';

import { beforeAll, describe, expect, it } from 'vitest';

import { sharedPathOrSkip } from '@curia/tensors';

import { DEFAULT_VOLUME_LIMITS } from '../io/limits.js';
import { readNifti, type NiftiVolumeData } from '../nifti/nifti-reader.js';
import { preprocessSlices } from '../preprocess/preprocess.js';
import { int16Bytes, writeNifti, type NiftiWriteOptions } from '../nifti/nifti-writer.js';
import { openVolume, type Volume } from '../volume.js';
import { mat4Multiply } from './affine.js';
import { canonicalToInputIndex } from './geometry.js';

interface Permuted {
  values: Int16Array;
  dims: number[];
  affine: number[];
}

/** New axis t walks old axis perm[t] (reversed when flips[t]); the affine is adjusted to keep world positions. */
function permute(src: NiftiVolumeData, perm: number[], flips: boolean[]): Permuted {
  const od = src.dims;
  const nd = perm.map((p) => od[p]!);
  const values = new Int16Array(nd[0]! * nd[1]! * nd[2]!);
  const ostr = [1, od[0], od[0] * od[1]];
  const old = src.voxels as Int16Array;
  const o = [0, 0, 0];
  let n = 0;
  for (let c = 0; c < nd[2]!; c++) {
    for (let b = 0; b < nd[1]!; b++) {
      for (let a = 0; a < nd[0]!; a++) {
        [a, b, c].forEach((v, t) => (o[perm[t]!] = flips[t] ? nd[t]! - 1 - v : v));
        values[n++] = old[o[0]! * ostr[0]! + o[1]! * ostr[1]! + o[2]! * ostr[2]!]!;
      }
    }
  }
  const m = new Array<number>(16).fill(0);
  m[15] = 1;
  perm.forEach((p, t) => {
    m[p * 4 + t] = flips[t] ? -1 : 1;
    m[p * 4 + 3] = flips[t] ? nd[t]! - 1 : 0;
  });
  return { values, dims: nd, affine: mat4Multiply(src.affine, m) };
}

/** Number of differing elements across two slice lists (fast: vitest deep-equal on typed arrays is slow). */
function mismatches(a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  if (a.length !== b.length) return Infinity;
  let bad = 0;
  a.forEach((x, k) => {
    const y = b[k]!;
    if (x.length !== y.length) bad += Math.max(x.length, y.length);
    else for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) bad++;
  });
  return bad;
}

async function allSlices(v: Volume): Promise<Float64Array[]> {
  const out: Float64Array[] = [];
  for (let k = 0; k < v.sliceCount; k++) out.push(await v.readCanonicalSlice(k));
  return out;
}

describe('orientation invariance (example_ct_sm rewritten in memory)', () => {
  let src: NiftiVolumeData | null = null;
  let reference: Float64Array[] = [];
  let refVolume: Volume;

  beforeAll(async () => {
    const path = sharedPathOrSkip('data/totalsegmentator/example_ct_sm.nii.gz');
    if (!path) return;
    const bytes = await readFile(path);
    src = await readNifti(bytes, { limits: DEFAULT_VOLUME_LIMITS });
    refVolume = await openVolume({ kind: 'bytes', data: bytes });
    reference = await allSlices(refVolume);
  });

  const base = (p: Permuted): NiftiWriteOptions => ({
    dims: p.dims,
    datatypeCode: 4,
    bitpix: 16,
    voxelBytes: int16Bytes(p.values),
    affine: p.affine,
  });

  const variants: [string, () => NiftiWriteOptions, string?][] = [
    ['uncompressed NIfTI-1', () => base(permute(src!, [0, 1, 2], [false, false, false])), 'RAS'],
    [
      'permuted (k,i,j) with flips, gzip',
      () => ({ ...base(permute(src!, [2, 0, 1], [true, false, true])), gzip: true }),
      'IRP',
    ],
    [
      'qform only, permuted (j,k,i)',
      () => ({ ...base(permute(src!, [1, 2, 0], [false, true, false])), transform: 'qform' }),
      'AIR',
    ],
    [
      'big-endian, j flipped, gzip',
      () => {
        const p = permute(src!, [0, 1, 2], [false, true, false]);
        return { ...base(p), voxelBytes: int16Bytes(p.values, false), littleEndian: false, gzip: true };
      },
      'RPS',
    ],
    [
      'NIfTI-2, (j,i,k), gzip',
      () => ({ ...base(permute(src!, [1, 0, 2], [false, false, false])), version: 2, gzip: true }),
      'ARS',
    ],
    [
      'NIfTI-2 big-endian qform, all flipped',
      () => {
        const p = permute(src!, [0, 1, 2], [true, true, true]);
        return {
          ...base(p),
          voxelBytes: int16Bytes(p.values, false),
          littleEndian: false,
          version: 2,
          transform: 'qform',
        };
      },
      'LPI',
    ],
    [
      'float32 with scl_slope 2 / scl_inter 10',
      () => {
        const p = permute(src!, [0, 1, 2], [false, false, false]);
        const f = Float32Array.from(p.values, (v) => (v - 10) / 2);
        return {
          ...base(p),
          datatypeCode: 16,
          bitpix: 32,
          voxelBytes: new Uint8Array(f.buffer),
          sclSlope: 2,
          sclInter: 10,
        };
      },
    ],
    [
      '4D with a singleton 4th dim',
      () => {
        const p = permute(src!, [0, 1, 2], [false, false, false]);
        return { ...base(p), dims: [...p.dims, 1] };
      },
    ],
  ];

  for (const [name, make, axcodes] of variants) {
    it(`${name}: identical canonical slices`, async () => {
      if (!src) return;
      const v = await openVolume({ kind: 'bytes', data: writeNifti(make()) });
      if (axcodes) expect(v.geometry.inputAxcodes).toBe(axcodes);
      expect(v.geometry.canonicalDims).toEqual(refVolume.geometry.canonicalDims);
      v.geometry.canonicalAffine.forEach((x, i) =>
        expect(x).toBeCloseTo(refVolume.geometry.canonicalAffine[i]!, 3),
      );
      expect(mismatches(await allSlices(v), reference)).toBe(0);
    });
  }

  it('true 4D: requires volumeIndex and reads the chosen volume', async () => {
    if (!src) return;
    const p = permute(src, [0, 1, 2], [false, false, false]);
    const zeros = new Int16Array(p.values.length);
    const both = new Uint8Array(p.values.length * 4);
    both.set(int16Bytes(zeros), 0);
    both.set(int16Bytes(p.values), p.values.length * 2);
    const data = writeNifti({ ...base(p), dims: [...p.dims, 2], voxelBytes: both, gzip: true });
    await expect(openVolume({ kind: 'bytes', data })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('pass volumeIndex') as unknown,
    });
    await expect(openVolume({ kind: 'bytes', data }, { volumeIndex: 2 })).rejects.toMatchObject({
      code: 'OUT_OF_RANGE',
    });
    const v = await openVolume({ kind: 'bytes', data }, { volumeIndex: 1 });
    expect(mismatches(await allSlices(v), reference)).toBe(0);
  });

  it('canonicalToInputIndex maps canonical voxels back to the input grid', async () => {
    if (!src) return;
    const p = permute(src, [2, 0, 1], [true, false, true]);
    const v = await openVolume({ kind: 'bytes', data: writeNifti(base(p)) });
    const g = v.geometry;
    const [ns, nr, nc] = g.canonicalDims;
    let seed = 3;
    for (let t = 0; t < 200; t++) {
      seed = (seed * 16807) % 2147483647;
      const k = seed % ns;
      const r = (seed >> 5) % nr;
      const c = (seed >> 11) % nc;
      const [i, j, kk] = canonicalToInputIndex(g, k, r, c);
      const slice = await v.readCanonicalSlice(k);
      expect(slice[r * nc + c]).toBe(p.values[i + p.dims[0]! * (j + p.dims[1]! * kk)]);
      expect(g.sliceInputIndex[k]).toBe([i, j, kk][g.axes.slice.inputAxis]);
    }
    expect(() => canonicalToInputIndex(g, ns, 0, 0)).toThrow(/outside/);
  });

  it('preprocessed output is identical for a permuted, flipped input', async () => {
    if (!src) return;
    const p = permute(src, [1, 2, 0], [true, true, false]);
    const v = await openVolume({ kind: 'bytes', data: writeNifti({ ...base(p), gzip: true }) });
    const selection = { kind: 'indices', indices: [3, 17] } as const;
    const a = [];
    for await (const s of preprocessSlices(v, { selection })) a.push(s);
    let i = 0;
    for await (const s of preprocessSlices(refVolume, { selection })) {
      expect(mismatches([a[i]!.pixels], [s.pixels])).toBe(0);
      expect(a[i]!.inputSliceIndex).toBe(v.geometry.sliceInputIndex[s.canonicalIndex]);
      i++;
    }
  });
});
