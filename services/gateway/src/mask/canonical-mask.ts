import { CuriaError } from '@curia/errors';
import { common } from '@curia/proto';
import { nearestSourceIndices } from '@curia/volume';

import type { InputGridMask } from './input-mask.js';

interface Axis {
  readonly inputAxis: number;
  readonly flip: boolean;
}

/**
 * Turns an input-grid mask into model-grid masks: for a canonical slice, takes the mask's plane
 * on the input grid, reorients it as the preprocess engine reorients pixels (rows → Posterior,
 * columns → patient Left, following `CanonicalGeometry`'s axis permutation and flips) and resizes
 * it to height × width by nearest neighbour. Offsets are precomputed once per study, so a slice
 * costs one byte lookup per output pixel and no allocation beyond its output.
 */
export class CanonicalMaskSampler {
  readonly height: number;
  readonly width: number;
  private readonly slice: Axis;
  private readonly strides: readonly [number, number, number];
  /** Offset of canonical (row 0, col 0) within a slice plane, excluding the slice axis. */
  private readonly planeBase: number;
  /** Input offset (relative to the plane base) of each output row / column. */
  private readonly rowOffsets: Int32Array;
  private readonly colOffsets: Int32Array;
  /** The distinct sampled row / column offsets (emptiness checks visit each input voxel once). */
  private readonly uniqueRows: Int32Array;
  private readonly uniqueCols: Int32Array;

  constructor(
    private readonly mask: InputGridMask,
    geometry: common.CanonicalGeometry,
    height: number,
    width: number,
  ) {
    const axes = geometry.canonicalToInputAxes;
    const flips = geometry.canonicalAxisFlipped;
    if (
      axes.length !== 3 ||
      flips.length !== 3 ||
      [...axes].sort().join() !== '0,1,2' ||
      !(Number.isInteger(height) && height > 0 && Number.isInteger(width) && width > 0)
    ) {
      throw new CuriaError('INTERNAL', 'preprocess sent an invalid canonical geometry or image size');
    }
    const [, d1, d2] = mask.dims;
    this.strides = [d1 * d2, d2, 1];
    const axis = (a: number): Axis => ({ inputAxis: axes[a]!, flip: flips[a]! });
    const col = axis(0);
    const row = axis(1);
    this.slice = axis(2);
    this.height = height;
    this.width = width;
    const n = (a: Axis): number => mask.dims[a.inputAxis]!;
    const start = (a: Axis): number => (a.flip ? n(a) - 1 : 0) * this.strides[a.inputAxis]!;
    const step = (a: Axis): number => (a.flip ? -1 : 1) * this.strides[a.inputAxis]!;
    this.planeBase = start(row) + start(col);
    const offsets = (a: Axis, size: number): Int32Array => {
      const src = nearestSourceIndices(n(a), size);
      const s = step(a);
      return src.map((i) => i * s);
    };
    this.rowOffsets = offsets(row, height);
    this.colOffsets = offsets(col, width);
    this.uniqueRows = Int32Array.from(new Set(this.rowOffsets));
    this.uniqueCols = Int32Array.from(new Set(this.colOffsets));
  }

  /** Number of canonical slices. */
  get sliceCount(): number {
    return this.mask.dims[this.slice.inputAxis]!;
  }

  /** Input slice index of canonical slice `k` (what `SliceMapping.input_slice_index` reports). */
  inputSliceIndex(k: number): number {
    const n = this.sliceCount;
    if (!(Number.isInteger(k) && k >= 0 && k < n)) {
      throw new CuriaError('INTERNAL', `canonical slice ${k} is outside the mask's 0..${n - 1}`);
    }
    return this.slice.flip ? n - 1 - k : k;
  }

  private base(k: number): number {
    return this.inputSliceIndex(k) * this.strides[this.slice.inputAxis]! + this.planeBase;
  }

  /** True when the resized mask of canonical slice `k` has at least one pixel inside. */
  covers(k: number): boolean {
    const v = this.mask.voxels;
    const base = this.base(k);
    for (const r of this.uniqueRows) {
      const p = base + r;
      for (const c of this.uniqueCols) if (v[p + c] !== 0) return true;
    }
    return false;
  }

  /** The resized mask of canonical slice `k`: height × width bytes, row-major, 1 = inside. */
  sample(k: number, out = new Uint8Array(this.height * this.width)): Uint8Array {
    const v = this.mask.voxels;
    const base = this.base(k);
    const cols = this.colOffsets;
    const w = this.width;
    for (let r = 0; r < this.height; r++) {
      const p = base + this.rowOffsets[r]!;
      const o = r * w;
      for (let c = 0; c < w; c++) out[o + c] = v[p + cols[c]!] !== 0 ? 1 : 0;
    }
    return out;
  }

  /** {@link sample} as an `EmbedSlice.mask` tensor (U8, [height, width]). */
  tensor(k: number): common.Tensor {
    return { dtype: common.DType.U8, shape: [this.height, this.width], data: this.sample(k) };
  }
}

/** A whole-image mask: sent with slices whose ROI is empty but whose other outputs are needed. */
export function wholeImageMask(height: number, width: number): common.Tensor {
  return { dtype: common.DType.U8, shape: [height, width], data: new Uint8Array(height * width).fill(1) };
}
