import { CuriaError } from '@curia/errors';

import type { Mat4 } from './affine.js';

/**
 * For each voxel axis: which world axis (0 = x, 1 = y, 2 = z of the affine's frame) it follows
 * and whether it runs along (+1) or against (-1) that world axis.
 */
export interface AxisOrientation {
  readonly worldAxis: 0 | 1 | 2;
  readonly sign: 1 | -1;
}

/**
 * Nibabel-style `io_orientation`: assigns each voxel axis to the world axis it is most parallel
 * to, greedily by largest absolute direction cosine, so every world axis is used exactly once.
 * Oblique volumes snap to the nearest axes (no resampling is ever done).
 */
export function ioOrientation(affine: Mat4): [AxisOrientation, AxisOrientation, AxisOrientation] {
  const cos: number[] = [];
  for (let v = 0; v < 3; v++) {
    const n = Math.hypot(affine[v]!, affine[4 + v]!, affine[8 + v]!);
    if (!(n > 0) || !Number.isFinite(n)) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `affine column ${v} is zero or not finite: voxel axis ${v} has no direction`,
      );
    }
    for (let w = 0; w < 3; w++) cos[w * 3 + v] = affine[w * 4 + v]! / n;
  }
  const result: (AxisOrientation | undefined)[] = [undefined, undefined, undefined];
  const usedWorld = [false, false, false];
  for (let step = 0; step < 3; step++) {
    let best = -1;
    let bw = 0;
    let bv = 0;
    for (let w = 0; w < 3; w++) {
      if (usedWorld[w]) continue;
      for (let v = 0; v < 3; v++) {
        if (result[v]) continue;
        const m = Math.abs(cos[w * 3 + v]!);
        if (m > best) {
          best = m;
          bw = w;
          bv = v;
        }
      }
    }
    if (!(best > 1e-6))
      throw new CuriaError('INVALID_ARGUMENT', 'affine is singular: voxel axes are not independent');
    usedWorld[bw] = true;
    result[bv] = { worldAxis: bw as 0 | 1 | 2, sign: cos[bw * 3 + bv]! >= 0 ? 1 : -1 };
  }
  return result as [AxisOrientation, AxisOrientation, AxisOrientation];
}

/**
 * Axis codes (nibabel `aff2axcodes` convention: each letter names the direction the voxel axis
 * points towards) for an affine whose world frame is `frame`.
 */
export function axcodesOf(affine: Mat4, frame: 'RAS' | 'LPS'): string {
  const pos = frame === 'RAS' ? ['R', 'A', 'S'] : ['L', 'P', 'S'];
  const neg = frame === 'RAS' ? ['L', 'P', 'I'] : ['R', 'A', 'I'];
  return ioOrientation(affine)
    .map((o) => (o.sign > 0 ? pos[o.worldAxis]! : neg[o.worldAxis]!))
    .join('');
}
