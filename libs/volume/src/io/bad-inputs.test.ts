import { gzipSync } from 'node:zlib';

import { describe, expect, it } from 'vitest';

import { CuriaError } from '@curia/errors';

import { int16Bytes, writeNifti, type NiftiWriteOptions } from '../nifti/nifti-writer.js';
import { niftiGzipBomb } from '../testing/bombs.js';
import { zeroRleFrame } from '../testing/dicom-writer.js';
import type { VolumeAdmission } from './limits.js';
import { preprocessHeldBytes } from './limits.js';
import { openVolume, type OpenVolumeOptions } from '../volume.js';

const AFFINE = [2, 0, 0, -10, 0, 2, 0, -10, 0, 0, 2, -10, 0, 0, 0, 1];

function nifti(over: Partial<NiftiWriteOptions> = {}): Uint8Array {
  const dims = over.dims ?? [8, 6, 4];
  const n = dims.reduce((a, b) => a * Math.max(1, b), 1);
  return writeNifti({
    dims,
    datatypeCode: 4,
    bitpix: 16,
    voxelBytes: int16Bytes(Array.from({ length: n }, (_, i) => i - 50)),
    affine: AFFINE,
    ...over,
  });
}

/** Opens bytes expecting a CuriaError; returns its code, message and the time it took. */
async function failure(
  data: Uint8Array,
  opts?: OpenVolumeOptions,
): Promise<{ code: string; message: string; ms: number }> {
  const t0 = performance.now();
  try {
    await openVolume({ kind: 'bytes', data }, opts);
  } catch (e) {
    const err = e as { code: string; message: string; name: string };
    expect(err.name).toBe('CuriaError');
    return { code: err.code, message: err.message, ms: performance.now() - t0 };
  }
  throw new Error('expected openVolume to reject');
}

/** Writes a NIfTI-1 header whose dims are patched after writing (the writer needs real voxel bytes). */
function withDims(dims: number[], voxels = new Uint8Array(64)): Uint8Array {
  const b = writeNifti({ dims: [1, 1, 1], datatypeCode: 4, bitpix: 16, voxelBytes: voxels, affine: AFFINE });
  const dv = new DataView(b.buffer, b.byteOffset);
  dv.setInt16(40, dims.length, true);
  dims.forEach((d, i) => dv.setInt16(42 + 2 * i, d, true));
  return b;
}

describe('bad inputs are refused quickly with precise CuriaErrors', () => {
  const cases: [string, () => Uint8Array, string, RegExp, OpenVolumeOptions?][] = [
    ['empty input', () => new Uint8Array(0), 'INVALID_ARGUMENT', /input is empty/],
    [
      'a text file',
      () => Buffer.from('hello, this is not a volume\n'.repeat(40)),
      'INVALID_ARGUMENT',
      /not a supported volume/,
    ],
    [
      'corrupt gzip',
      () =>
        Uint8Array.from([
          0x1f,
          0x8b,
          8,
          0,
          0,
          0,
          0,
          0,
          0,
          3,
          ...Array.from({ length: 200 }, (_, i) => (i * 37) & 255),
        ]),
      'INVALID_ARGUMENT',
      /corrupt gzip/,
    ],
    [
      'gzip of a text file',
      () => gzipSync(Buffer.from('not a nifti at all'.repeat(100))),
      'INVALID_ARGUMENT',
      /not a NIfTI file/,
    ],
    [
      'truncated gzip',
      () => {
        const g = gzipSync(nifti({ dims: [64, 64, 16] }));
        return g.subarray(0, g.length >> 1);
      },
      'INVALID_ARGUMENT',
      /corrupt gzip|truncated/,
    ],
    [
      'gzip with its voxel data cut short',
      () => gzipSync(nifti().subarray(0, 352 + 100)),
      'INVALID_ARGUMENT',
      /truncated data: the gzip stream ends after 452 bytes but 736 are needed/,
    ],
    [
      'truncated .nii',
      () => nifti().subarray(0, 400),
      'INVALID_ARGUMENT',
      /truncated NIfTI file: voxel data needs bytes up to 736 but the file has 400/,
    ],
    ['a zero dimension', () => withDims([8, 0, 4]), 'INVALID_ARGUMENT', /dim\[2\] is 0/],
    ['a negative dimension', () => withDims([8, 6, -4]), 'INVALID_ARGUMENT', /dim\[3\] is -4/],
    [
      'absurd size 30000^3 (gzip bomb header)',
      () => gzipSync(withDims([30000, 30000, 30000])),
      'RESOURCE_EXHAUSTED',
      /30000x30000x30000 int16 needs 54000000000000 bytes .*\(maxVoxelBytes\)/,
    ],
    [
      'a configured voxel limit',
      () => nifti({ dims: [64, 64, 16] }),
      'RESOURCE_EXHAUSTED',
      /above the limit of 1000 bytes/,
      { limits: { maxVoxelBytes: 1000 } },
    ],
    [
      'NaN/Inf voxels',
      () => {
        const f = Float32Array.from({ length: 8 * 6 * 4 }, (_, i) => i);
        f[3] = NaN;
        f[10] = Infinity;
        f[11] = -Infinity;
        return nifti({ datatypeCode: 16, bitpix: 32, voxelBytes: new Uint8Array(f.buffer) });
      },
      'INVALID_ARGUMENT',
      /^volume contains 3 non-finite voxels/,
    ],
    [
      'complex64 datatype',
      () => nifti({ datatypeCode: 32, bitpix: 64, voxelBytes: new Uint8Array(8 * 6 * 4 * 8) }),
      'UNIMPLEMENTED',
      /datatype 32 \(complex64\)/,
    ],
    [
      'RGB24 datatype',
      () => nifti({ datatypeCode: 128, bitpix: 24, voxelBytes: new Uint8Array(8 * 6 * 4 * 3) }),
      'UNIMPLEMENTED',
      /datatype 128 \(RGB24\)/,
    ],
    [
      'an invalid datatype code',
      () => nifti({ datatypeCode: 3, bitpix: 16 }),
      'INVALID_ARGUMENT',
      /datatype code 3/,
    ],
    [
      'bitpix not matching datatype',
      () => nifti({ bitpix: 8 }),
      'INVALID_ARGUMENT',
      /bitpix 8 does not match datatype 4/,
    ],
    [
      'a bad NIfTI magic',
      () => {
        const b = nifti();
        b[344] = 0x78;
        return b;
      },
      'INVALID_ARGUMENT',
      /bad magic/,
    ],
  ];

  for (const [name, make, code, msg, opts] of cases) {
    it(name, async () => {
      const r = await failure(make(), opts);
      expect(r.code).toBe(code);
      expect(r.message).toMatch(msg);
      expect(r.ms).toBeLessThan(3000);
    });
  }

  it('a gzip bomb after a valid header inflates only the planned bytes', async () => {
    // Member 1: a valid 64x64x16 int16 NIfTI; then 64 members of 16 MiB zeros (1 GiB if fully inflated).
    const head = gzipSync(nifti({ dims: [64, 64, 16] }));
    const zeros = gzipSync(Buffer.alloc(16 * 1024 ** 2), { level: 9 });
    const bomb = Buffer.concat([head, ...Array.from({ length: 64 }, () => zeros)]);
    const before = process.memoryUsage().rss;
    const t0 = performance.now();
    const v = await openVolume({ kind: 'bytes', data: bomb });
    const ms = performance.now() - t0;
    expect(v.geometry.inputDims).toEqual([64, 64, 16]);
    expect(ms).toBeLessThan(2000);
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 ** 2);
  });

  it('a gzip bomb of one huge member is cut at maxDecompressedBytes', async () => {
    // A 4D file whose chosen volume lies beyond the inflate cap.
    const b = nifti({ dims: [64, 64, 16, 40], voxelBytes: new Uint8Array(64 * 64 * 16 * 2 * 40) });
    const r = await failure(gzipSync(b), { volumeIndex: 39, limits: { maxDecompressedBytes: 1024 ** 2 } });
    expect(r.code).toBe('RESOURCE_EXHAUSTED');
    expect(r.message).toContain('maxDecompressedBytes');
  });

  it('an already-aborted signal cancels opening', async () => {
    const ac = new AbortController();
    ac.abort();
    const r = await failure(gzipSync(nifti()), { signal: ac.signal });
    expect(r.code).toBe('CANCELLED');
  });

  it('files: a single NIfTI is accepted, NIfTI mixed with others is refused', async () => {
    const v = await openVolume({ kind: 'files', files: [{ name: 'x.bin', data: nifti() }] });
    expect(v.geometry.inputDims).toEqual([8, 6, 4]);
    await expect(
      openVolume({
        kind: 'files',
        files: [
          { name: 'a', data: nifti() },
          { name: 'b', data: nifti() },
        ],
      }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('path: a missing file is NOT_FOUND', async () => {
    await expect(
      openVolume({ kind: 'path', path: '/nonexistent/curia/volume.nii.gz' }),
    ).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
  });
});

describe('openVolume admits a volume from its header before decoding it', () => {
  const refuse = (seen: VolumeAdmission[]) => (v: VolumeAdmission) => {
    seen.push(v);
    throw new CuriaError('RESOURCE_EXHAUSTED', 'no room');
  };

  it('a .nii.gz declaring 1 GiB: admit sees dims × dtype from the first inflated bytes; its refusal stops the inflate', async () => {
    const bomb = niftiGzipBomb([1024, 1024, 512], 'int16');
    const seen: VolumeAdmission[] = [];
    const before = process.memoryUsage().rss;
    const r = await failure(bomb, { admit: refuse(seen) });
    expect(r).toMatchObject({ code: 'RESOURCE_EXHAUSTED', message: 'no room' });
    expect(r.ms).toBeLessThan(500);
    expect(process.memoryUsage().rss - before).toBeLessThan(100 * 1024 ** 2);
    expect(seen).toEqual([
      {
        format: 'nifti',
        dims: [1024, 1024, 512],
        voxelType: 'int16',
        voxelBytes: 1024 ** 3,
        heldBytes: 1024 ** 3,
      },
    ]);
  });

  it('an uncompressed NIfTI is admitted before its voxels are viewed (in place: none held); admitting it opens it', async () => {
    const seen: VolumeAdmission[] = [];
    const v = await openVolume({ kind: 'bytes', data: nifti() }, { admit: (a) => void seen.push(a) });
    expect(v.geometry.inputDims).toEqual([8, 6, 4]);
    expect(seen).toEqual([
      { format: 'nifti', dims: [8, 6, 4], voxelType: 'int16', voxelBytes: 8 * 6 * 4 * 2, heldBytes: 0 },
    ]);
  });

  it('an RLE DICOM frame is admitted as rows × cols × frames × bits before any frame is decoded (axial: decoded per slice, none held)', async () => {
    const [rows, cols] = [2048, 2048];
    const data = zeroRleFrame(rows, cols);
    const seen: VolumeAdmission[] = [];
    const t0 = performance.now();
    await expect(
      openVolume({ kind: 'files', files: [{ name: 'a', data }] }, { admit: refuse(seen) }),
    ).rejects.toThrow('no room');
    expect(performance.now() - t0).toBeLessThan(500);
    expect(seen).toEqual([
      {
        format: 'dicom',
        dims: [cols, rows, 1],
        voxelType: 'int16',
        voxelBytes: rows * cols * 2,
        heldBytes: 0,
      },
    ]);
    // What a preprocess call holds beyond its input: the decoded frame and its float64 gather (one slice).
    expect(preprocessHeldBytes(seen[0]!, 4)).toBe(rows * cols * 10);
  });
});
