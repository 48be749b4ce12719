import { describe, expect, it } from 'vitest';

import { CuriaError } from '@curia/errors';
import { computeGeometry, writeNifti } from '@curia/volume';
import { niftiGzipBomb } from '@curia/volume/testing';

import { openLabelMap, readLabelMap } from './label-input.js';

const DIMS: [number, number, number] = [6, 5, 4];
const AFFINE = [2, 0, 0, -10, 0, 2, 0, 20, 0, 0, 3, 5, 0, 0, 0, 1];
const GRID = computeGeometry(DIMS, AFFINE, 'RAS');

const nifti = (
  o: { dims?: number[]; affine?: number[]; values?: number[]; float?: boolean } = {},
): Uint8Array => {
  const dims = o.dims ?? DIMS;
  const n = dims.reduce((a, b) => a * b, 1);
  const values = o.values ?? Array.from({ length: n }, (_, i) => i % 3);
  const bytes = o.float ? new Uint8Array(Float32Array.from(values).buffer) : Uint8Array.from(values);
  return writeNifti({
    dims,
    datatypeCode: o.float ? 16 : 2,
    bitpix: o.float ? 32 : 8,
    voxelBytes: bytes,
    affine: o.affine ?? AFFINE,
    gzip: true,
  });
};

describe('openLabelMap', () => {
  it('reads canonical label planes of a map on the study grid', async () => {
    const m = await openLabelMap(nifti(), GRID, 'labels');
    expect((await m.plane(0)).length).toBe(5 * 6);
    expect([...(await m.valuesOn(1))].sort()).toEqual([1, 2]);
  });

  it('refuses another grid, a shifted grid, non-integer labels and unreadable bytes, naming the field', async () => {
    await expect(openLabelMap(nifti({ dims: [6, 5, 3] }), GRID, 'studies[1].labels')).rejects.toThrow(
      /studies\[1\]\.labels dims \[6, 5, 3\] do not match the study's input grid dims \[6, 5, 4\]/,
    );
    const shifted = [...AFFINE];
    shifted[3] = -9.99;
    await expect(openLabelMap(nifti({ affine: shifted }), GRID, 'labels')).rejects.toThrow(
      /not on the study's input grid: .* 0\.0100 mm/,
    );
    const m = await openLabelMap(
      nifti({ float: true, values: Array.from({ length: 120 }, () => 2.5) }),
      GRID,
      'labels',
    );
    await expect(m.plane(0)).rejects.toThrow(/labels holds a voxel that is not an integer label 0..255/);
    await expect(openLabelMap(Uint8Array.of(1, 2, 3), GRID, 'reference_labels')).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/^reference_labels: /) as unknown,
    });
  });
});

describe('readLabelMap admission', () => {
  it('shows the header to admit before inflating; a budget refusal passes through unchanged', async () => {
    // A label map declaring 1024×1024×512 uint8 (512 MiB), whose stream really inflates to it.
    const bomb = niftiGzipBomb([1024, 1024, 512], 'uint8');
    const seen: number[] = [];
    const refusal = new CuriaError('RESOURCE_EXHAUSTED', 'no room', { retryAfterMs: 250 });
    const before = process.memoryUsage().rss;
    const t0 = performance.now();
    const err = await readLabelMap(bomb, 'studies[0].labels', undefined, (v) => {
      seen.push(v.heldBytes);
      throw refusal;
    }).catch((e: unknown) => e);
    expect(err).toBe(refusal);
    expect(seen).toEqual([512 * 1024 ** 2]);
    expect(performance.now() - t0).toBeLessThan(500);
    expect(process.memoryUsage().rss - before).toBeLessThan(100 * 1024 ** 2);
    const ok = await readLabelMap(nifti(), 'labels', undefined, (v) => void seen.push(v.heldBytes));
    expect(ok.grid.inputDims).toEqual(DIMS);
    expect(seen).toEqual([512 * 1024 ** 2, 6 * 5 * 4]);
  });
});
