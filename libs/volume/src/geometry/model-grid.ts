import { cubicAa } from '../preprocess/resize.js';

/**
 * How a canonical slice (rows × cols) lines up with the model's image grid (size × size pixels)
 * and its token grid (a (size / patch)² grid of patch tokens). The resize to the model grid uses
 * align_corners=False pixel centres: model pixel d sits at source coordinate (d + 0.5)·in/out − 0.5.
 * A token of the grid of G cells therefore sits at source coordinate (t + 0.5)·in/G − 0.5, and
 * source pixel s at token coordinate (s + 0.5)·G/in − 0.5.
 */

/**
 * Source index of each output pixel for a nearest-neighbour resize from `inSize` to `outSize`,
 * at the pixel centres the bicubic resize uses: src = (dst + 0.5) · in/out − 0.5, rounded half up
 * and clamped to the image. (Rounding half up of that is floor((dst + 0.5) · in/out): torch's
 * `nearest-exact`.)
 */
export function nearestSourceIndices(inSize: number, outSize: number): Int32Array {
  const out = new Int32Array(outSize);
  const scale = inSize / outSize;
  for (let d = 0; d < outSize; d++) {
    const s = Math.floor((d + 0.5) * scale);
    out[d] = Math.min(inSize - 1, Math.max(0, s));
  }
  return out;
}

/** Interpolation kernels for sampling a coarse grid at source pixel centres. */
export type GridKernel = 'linear' | 'cubic';

/** Interpolation taps of every source pixel on a grid: `taps` (index, weight) pairs per pixel. */
export interface GridTaps {
  /** Taps per source pixel: 2 (linear) or 4 (cubic). */
  readonly taps: number;
  /** Grid cell of tap t of pixel s at `s · taps + t`, clamped to the grid (border cells repeat). */
  readonly index: Int32Array;
  /** Weight of that tap; a pixel's weights sum to 1. */
  readonly weight: Float32Array;
}

/**
 * For each of `inSize` source pixels, the cells of a `gridSize` grid around its centre and their
 * interpolation weights, at the align_corners=False convention: pixel s sits at grid coordinate
 * (s + 0.5)·grid/in − 0.5. Cells beyond the border repeat the border cell.
 */
export function gridTaps(inSize: number, gridSize: number, kernel: GridKernel): GridTaps {
  const taps = kernel === 'linear' ? 2 : 4;
  const index = new Int32Array(inSize * taps);
  const weight = new Float32Array(inSize * taps);
  const clamp = (i: number): number => Math.min(gridSize - 1, Math.max(0, i));
  for (let s = 0; s < inSize; s++) {
    const t = ((s + 0.5) * gridSize) / inSize - 0.5;
    const t0 = Math.floor(t);
    const f = t - t0;
    const o = s * taps;
    if (kernel === 'linear') {
      index[o] = clamp(t0);
      index[o + 1] = clamp(t0 + 1);
      weight[o] = 1 - f;
      weight[o + 1] = f;
    } else {
      for (let d = -1; d <= 2; d++) {
        index[o + d + 1] = clamp(t0 + d);
        weight[o + d + 1] = cubicAa(f - d);
      }
    }
  }
  return { taps, index, weight };
}
