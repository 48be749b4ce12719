import { dice, hd95 } from '@curia/volume';

import type { ClassTable } from './classes.js';
import { CanonicalToInput, type StudyGrid } from './grid.js';
import type { LabelPlanes } from './label-input.js';

/** A run-length encoded binary mask: alternating run lengths starting with a 0-run, in C order over `dims`. */
export interface RunLengths {
  readonly dims: readonly number[];
  readonly counts: number[];
}

/**
 * The mask of label `value` on one input plane: the plane of the input grid that canonical slice
 * `s` lies in, its dims the two other input axes in increasing order, visited in C order (the last
 * of them fastest). Null when the value is absent from the plane.
 */
export function inputPlaneMask(
  voxels: Uint8Array,
  grid: StudyGrid,
  s: number,
  value: number,
): RunLengths | null {
  const n: readonly number[] = grid.inputDims;
  const strides = [1, n[0]!, n[0]! * n[1]!];
  const a = grid.axes.slice.inputAxis;
  const [p, q] = [0, 1, 2].filter((x) => x !== a) as [number, number];
  const np = n[p]!;
  const nq = n[q]!;
  const k = grid.axes.slice.flip ? n[a]! - 1 - s : s;
  const base = k * strides[a]!;
  const counts: number[] = [];
  let inside = false;
  let run = 0;
  let any = false;
  for (let xp = 0; xp < np; xp++)
    for (let xq = 0; xq < nq; xq++) {
      const v = voxels[base + xp * strides[p]! + xq * strides[q]!] === value;
      if (v !== inside) {
        counts.push(run);
        run = 0;
        inside = v;
      }
      if (v) any = true;
      run++;
    }
  counts.push(run);
  return any ? { dims: [np, nq], counts } : null;
}

/** A label map given as canonical planes, as voxels on the input grid (NIfTI order). */
export async function inputVoxelsOf(planes: LabelPlanes, grid: StudyGrid): Promise<Uint8Array> {
  const map = new CanonicalToInput(grid);
  const out = new Uint8Array(map.voxels);
  const [slices, rows, cols] = grid.canonicalDims;
  for (let s = 0; s < slices; s++) {
    const p = await planes.plane(s);
    const base = map.sliceBase(s);
    for (let r = 0; r < rows; r++) {
      const o = base + map.rowOffset[r]!;
      for (let c = 0; c < cols; c++) out[o + map.colOffset[c]!] = p[r * cols + c]!;
    }
  }
  return out;
}

/** Agreement of one class with a reference. */
export interface ClassAgreement {
  readonly name: string;
  readonly value: number;
  readonly dice: number;
  /** Undefined when either mask is empty. */
  readonly hd95Mm: number | undefined;
  readonly referenceVoxels: number;
  readonly predictedVoxels: number;
}

/** Dice and HD95 (mm, input spacing) of every class of `table` between a prediction and a reference on one grid. */
export function evaluateAgainst(
  predicted: Uint8Array,
  reference: Uint8Array,
  table: ClassTable,
  grid: StudyGrid,
): ClassAgreement[] {
  return table.classes.map((c) => {
    let ref = 0;
    let pred = 0;
    for (let i = 0; i < reference.length; i++) {
      if (reference[i] === c.value) ref++;
      if (predicted[i] === c.value) pred++;
    }
    return {
      name: c.name,
      value: c.value,
      dice: dice(predicted, reference, c.value),
      hd95Mm:
        ref && pred ? hd95(predicted, reference, c.value, grid.inputDims, grid.inputSpacing) : undefined,
      referenceVoxels: ref,
      predictedVoxels: pred,
    };
  });
}
