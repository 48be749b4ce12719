import { CuriaError } from '@curia/errors';
import { flipWorldXY, writeNifti } from '@curia/volume';

import type { ClassTable } from './classes.js';
import { CanonicalToInput, type StudyGrid } from './grid.js';
import type { SlicePrediction } from './sample.js';

const DT_UINT8 = 2;

/** Per-class totals of a label map. */
export interface ClassTotals {
  /** Voxels of each class index (index 0 = background). */
  readonly voxels: Float64Array;
  /** Sum of the chosen class's probability over its voxels, per class index. */
  readonly confidenceSum: Float64Array;
}

/**
 * A U8 label map on the study's input grid (NIfTI order: i fastest), filled one canonical slice at
 * a time from slice predictions, with per-class voxel counts and confidences.
 */
export class InputLabelMap {
  /** Voxel values (the classes' label values; 0 = background). */
  readonly voxels: Uint8Array;
  readonly totals: ClassTotals;
  private readonly map: CanonicalToInput;

  constructor(
    readonly grid: StudyGrid,
    readonly table: ClassTable,
  ) {
    this.map = new CanonicalToInput(grid);
    this.voxels = new Uint8Array(this.map.voxels);
    this.totals = { voxels: new Float64Array(table.size), confidenceSum: new Float64Array(table.size) };
  }

  /** Writes canonical slice `s`'s prediction (rows × cols of the canonical grid). */
  put(s: number, p: SlicePrediction): void {
    const [slices, rows, cols] = this.grid.canonicalDims;
    if (!(Number.isInteger(s) && s >= 0 && s < slices) || p.classes.length !== rows * cols) {
      throw new CuriaError(
        'INTERNAL',
        `slice ${s} does not fit the canonical grid ${slices}×${rows}×${cols}`,
      );
    }
    const base = this.map.sliceBase(s);
    const { rowOffset, colOffset } = this.map;
    const values = Uint8Array.from({ length: this.table.size }, (_, k) => this.table.valueOf(k));
    for (let r = 0; r < rows; r++) {
      const o = base + rowOffset[r]!;
      for (let c = 0; c < cols; c++) {
        const i = r * cols + c;
        const k = p.classes[i]!;
        this.voxels[o + colOffset[c]!] = values[k]!;
        this.totals.voxels[k]! += 1;
        this.totals.confidenceSum[k]! += p.confidence[i]!;
      }
    }
  }

  /** Volume of one voxel in mL. */
  get voxelMl(): number {
    const [a, b, c] = this.grid.inputSpacing;
    return (a * b * c) / 1000;
  }

  /** The label map as a NIfTI-1 file (U8) with the input's affine (in RAS, as NIfTI stores it) in sform and qform. */
  toNifti(gzip = false): Uint8Array {
    const a = this.grid.inputAffine;
    const ras = this.grid.inputFrame === 'LPS' ? flipWorldXY(a) : [...a];
    return writeNifti({
      dims: [...this.grid.inputDims],
      datatypeCode: DT_UINT8,
      bitpix: 8,
      voxelBytes: this.voxels,
      affine: ras,
      transform: 'both',
      gzip,
    });
  }
}
