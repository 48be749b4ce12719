import { CuriaError } from '@curia/errors';

import { isFiniteMatrix } from '../geometry/affine.js';
import type { NiftiHeaderInfo } from './nifti-header.js';

/** Where a NIfTI affine came from, in nibabel's order of preference. */
export type NiftiAffineSource = 'sform' | 'qform' | 'pixdim';

/**
 * The voxel-to-RAS affine (row-major 4x4) chosen as nibabel's `get_best_affine` does: the sform
 * when `sform_code > 0`, else the qform when `qform_code > 0`, else a pixdim scaling centred on
 * the volume with x flipped (nibabel's `get_base_affine`).
 */
export function niftiAffine(
  h: NiftiHeaderInfo,
  dims: readonly [number, number, number],
): { affine: number[]; source: NiftiAffineSource } {
  if (h.sformCode > 0) {
    const a = [...h.srow, 0, 0, 0, 1];
    if (!isFiniteMatrix(a))
      throw new CuriaError('INVALID_ARGUMENT', 'NIfTI sform (srow_x/y/z) contains non-finite numbers');
    return { affine: a, source: 'sform' };
  }
  const zooms = [1, 2, 3].map((i) => {
    const z = Math.abs(h.pixdim[i] ?? 1);
    return z > 0 && Number.isFinite(z) ? z : 1;
  }) as [number, number, number];
  if (h.qformCode > 0) {
    const [b, c, d] = h.quatern;
    const w2 = 1 - (b * b + c * c + d * d);
    if (w2 < -1e-6 || !Number.isFinite(w2)) {
      throw new CuriaError('INVALID_ARGUMENT', 'NIfTI qform quaternion (quatern_b/c/d) has norm above 1');
    }
    const a = Math.sqrt(Math.max(0, w2));
    const r = [
      [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
      [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
      [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - b * b - c * c],
    ];
    const qfac = (h.pixdim[0] ?? 1) < 0 ? -1 : 1;
    const z = [zooms[0], zooms[1], zooms[2] * qfac];
    const out: number[] = [];
    for (let row = 0; row < 3; row++) {
      for (let col = 0; col < 3; col++) out.push(r[row]![col]! * z[col]!);
      out.push(h.qoffset[row]!);
    }
    out.push(0, 0, 0, 1);
    if (!isFiniteMatrix(out))
      throw new CuriaError('INVALID_ARGUMENT', 'NIfTI qform contains non-finite numbers');
    return { affine: out, source: 'qform' };
  }
  const zx = -zooms[0];
  const [zy, zz] = [zooms[1], zooms[2]];
  return {
    affine: [
      zx,
      0,
      0,
      -((dims[0] - 1) / 2) * zx,
      0,
      zy,
      0,
      -((dims[1] - 1) / 2) * zy,
      0,
      0,
      zz,
      -((dims[2] - 1) / 2) * zz,
      0,
      0,
      0,
      1,
    ],
    source: 'pixdim',
  };
}
