import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { flipWorldXY } from '../geometry/affine.js';
import { writeNifti } from '../nifti/nifti-writer.js';
import type { Volume } from '../volume.js';
import { writeDicom } from './dicom-writer.js';

/** UIDs of a written series (written when given, as real series carry them). */
export interface SeriesUids {
  readonly series: string;
  readonly study?: string;
  readonly frameOfReference?: string;
  /** SOP Instance UID of slice k. */
  readonly instance?: (k: number) => string;
}

/**
 * Writes a volume as an axial DICOM series (explicit VR little endian, int16 values, one file per
 * canonical slice, named in reverse order): its canonical slices are already DICOM's axial layout
 * (rows → Posterior, columns → patient Left), positioned by the canonical affine. The series'
 * input grid is therefore the volume's canonical grid.
 */
export async function writeCanonicalSeries(volume: Volume, dir: string, uids: SeriesUids): Promise<void> {
  await mkdir(dir, { recursive: true });
  const g = volume.geometry;
  const [slices, rows, cols] = g.canonicalDims;
  const a = g.canonicalAffine; // (col, row, slice, 1) -> LPS mm
  for (let k = 0; k < slices; k++) {
    const v = await volume.readCanonicalSlice(k);
    const px = new Uint8Array(rows * cols * 2);
    const dv = new DataView(px.buffer);
    for (let i = 0; i < rows * cols; i++) dv.setInt16(2 * i, Math.round(v[i]!), true);
    await writeFile(
      join(dir, `slice-${String(slices - k).padStart(4, '0')}.dcm`),
      writeDicom({
        transferSyntaxUid: '1.2.840.10008.1.2.1',
        seriesInstanceUid: uids.series,
        rows,
        cols,
        bitsAllocated: 16,
        pixelRepresentation: 1,
        iop: [
          a[0]! / g.canonicalSpacing[2],
          a[4]! / g.canonicalSpacing[2],
          a[8]! / g.canonicalSpacing[2],
          a[1]! / g.canonicalSpacing[1],
          a[5]! / g.canonicalSpacing[1],
          a[9]! / g.canonicalSpacing[1],
        ],
        ipp: [a[2]! * k + a[3]!, a[6]! * k + a[7]!, a[10]! * k + a[11]!],
        pixelSpacing: [g.canonicalSpacing[1], g.canonicalSpacing[2]],
        pixelData: px,
        ...(uids.study ? { studyInstanceUid: uids.study } : {}),
        ...(uids.frameOfReference ? { frameOfReferenceUid: uids.frameOfReference } : {}),
        ...(uids.instance ? { sopInstanceUid: uids.instance(k) } : {}),
      }),
    );
  }
}

/**
 * A label volume as a U8 NIfTI on its canonical grid (the grid of {@link writeCanonicalSeries}'s
 * series): voxel (col, row, slice), RAS affine.
 */
export async function canonicalLabelsNifti(volume: Volume): Promise<Uint8Array> {
  const g = volume.geometry;
  const [slices, rows, cols] = g.canonicalDims;
  const out = new Uint8Array(slices * rows * cols);
  for (let k = 0; k < slices; k++) {
    const v = await volume.readCanonicalSlice(k);
    for (let i = 0; i < rows * cols; i++) out[k * rows * cols + i] = v[i]!;
  }
  return writeNifti({
    dims: [cols, rows, slices],
    datatypeCode: 2,
    bitpix: 8,
    voxelBytes: out,
    affine: flipWorldXY(g.canonicalAffine),
  });
}
