import { CuriaError } from '@curia/errors';

import { voxelCount, type GridField } from './field.js';

/** Overlap of one label between two label maps on one grid. */
export interface LabelDice {
  readonly label: number;
  /** 2|A ∩ B| / (|A| + |B|); 1 when the label is absent from both (as `dice` of @curia/volume). */
  readonly dice: number;
  readonly voxelsA: number;
  readonly voxelsB: number;
}

/**
 * Dice of every label between two label maps (U8/U16 values, same grid) in one pass over the voxels
 * (the same value as @curia/volume's `dice` per label, without a pass per label). `labels` defaults to
 * every non-zero label present in either map, ascending. (Learn2Reg averages over the labels present
 * in both the fixed and the moving map: filter on `voxelsA`/`voxelsB`.)
 */
export function dicePerLabel(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  labels?: readonly number[],
): LabelDice[] {
  if (a.length !== b.length) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `label maps of ${a.length} and ${b.length} voxels are not on one grid`,
    );
  }
  const size = 65536;
  const countA = new Float64Array(size);
  const countB = new Float64Array(size);
  const both = new Float64Array(size);
  for (let q = 0; q < a.length; q++) {
    const la = a[q]!;
    const lb = b[q]!;
    if (!(la >= 0 && la < size && lb >= 0 && lb < size && Number.isInteger(la) && Number.isInteger(lb))) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `label values must be integers in 0..65535, found ${la} / ${lb}`,
      );
    }
    countA[la]!++;
    countB[lb]!++;
    if (la === lb) both[la]!++;
  }
  const which =
    labels ??
    Array.from({ length: size - 1 }, (_, i) => i + 1).filter((l) => countA[l]! > 0 || countB[l]! > 0);
  return which.map((label) => {
    const va = label >= 0 && label < size ? countA[label]! : 0;
    const vb = label >= 0 && label < size ? countB[label]! : 0;
    const ab = label >= 0 && label < size ? both[label]! : 0;
    return { label, dice: va + vb === 0 ? 1 : (2 * ab) / (va + vb), voxelsA: va, voxelsB: vb };
  });
}

/**
 * Mean end-point error (mm) between two displacement fields on one grid: the mean of |a(x) − b(x)|
 * over the voxels where `mask` is non-zero (all voxels without a mask). NaN when the mask is empty.
 */
export function meanEndpointError(a: GridField, b: GridField, mask?: Uint8Array): number {
  const n = voxelCount(a.grid);
  if (a.channels !== 3 || b.channels !== 3 || a.data.length !== 3 * n || b.data.length !== a.data.length) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      'end-point error compares two 3-channel fields of the same size',
    );
  }
  if (a.grid.dims.some((d, i) => d !== b.grid.dims[i])) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `fields on ${a.grid.dims.join('x')} and ${b.grid.dims.join('x')} grids`,
    );
  }
  if (mask && mask.length !== n) {
    throw new CuriaError('INVALID_ARGUMENT', `the mask has ${mask.length} voxels, the fields ${n}`);
  }
  let sum = 0;
  let count = 0;
  for (let q = 0; q < n; q++) {
    if (mask && !mask[q]) continue;
    const dx = a.data[q]! - b.data[q]!;
    const dy = a.data[n + q]! - b.data[n + q]!;
    const dz = a.data[2 * n + q]! - b.data[2 * n + q]!;
    sum += Math.sqrt(dx * dx + dy * dy + dz * dz);
    count++;
  }
  return sum / count;
}
