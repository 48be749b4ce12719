import { CuriaError } from '@curia/errors';

import type { SegClass } from './classes.js';

/** Architectures of a fitted segmentation head. */
export type SegmenterKind = 'linear' | 'conv3x3';

/**
 * A fitted segmentation head on the patch-token grid: class scores are a convolution of the
 * centred tokens, scores[q] = bias[q] + Σ_d Σ_(i,j) kernel[q, d, i, j] · (x[d, y + i − r, x + j − r] − center[d]),
 * with r = ⌊ks/2⌋ and tokens outside the grid counting as `center` (zero after centring).
 */
export interface SegmenterWeights {
  readonly kind: SegmenterKind;
  /** Token width D. */
  readonly dim: number;
  /** Foreground classes; class index 0 is background. */
  readonly classes: readonly SegClass[];
  /** D values subtracted from every token. */
  readonly center: Float32Array;
  /** K × D × ks × ks (K = classes + 1). */
  readonly kernel: Float32Array;
  /** K. */
  readonly bias: Float32Array;
}

/** Kernel side of a head kind. */
export function kernelSize(kind: SegmenterKind): 1 | 3 {
  return kind === 'linear' ? 1 : 3;
}

/** Checks that a head's arrays agree with its kind, width and classes. */
export function checkSegmenter(w: SegmenterWeights): void {
  const k = w.classes.length + 1;
  const ks = kernelSize(w.kind);
  if (w.center.length !== w.dim || w.bias.length !== k || w.kernel.length !== k * w.dim * ks * ks) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `segmentation head arrays do not match ${w.kind} with ${k} classes on ${w.dim}-wide tokens`,
    );
  }
}

/**
 * Class scores of one slice in TypeScript (the reference the ONNX graph is tested against):
 * `tokens` is G·G × D (token-major, row-major grid); the result is K × G × G (class-major).
 */
export function segmenterScores(w: SegmenterWeights, tokens: Float32Array, grid: number): Float32Array {
  const d = w.dim;
  const k = w.classes.length + 1;
  const ks = kernelSize(w.kind);
  const r = (ks - 1) / 2;
  const g = grid;
  if (tokens.length !== g * g * d) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `tokens hold ${tokens.length} values; ${g}×${g} tokens of width ${d} need ${g * g * d}`,
    );
  }
  const centred = new Float32Array(tokens.length);
  for (let t = 0; t < g * g; t++)
    for (let j = 0; j < d; j++) centred[t * d + j] = tokens[t * d + j]! - w.center[j]!;
  const out = new Float32Array(k * g * g);
  for (let q = 0; q < k; q++) {
    const plane = q * g * g;
    for (let y = 0; y < g; y++)
      for (let x = 0; x < g; x++) {
        let s = w.bias[q]!;
        for (let i = 0; i < ks; i++) {
          const yy = y + i - r;
          if (yy < 0 || yy >= g) continue;
          for (let jx = 0; jx < ks; jx++) {
            const xx = x + jx - r;
            if (xx < 0 || xx >= g) continue;
            const src = (yy * g + xx) * d;
            const kbase = (q * d * ks + i) * ks + jx;
            for (let c = 0; c < d; c++) s += w.kernel[kbase + c * ks * ks]! * centred[src + c]!;
          }
        }
        out[plane + y * g + x] = s;
      }
  }
  return out;
}

/**
 * Smooths class scores across neighbouring canonical slices with weights ¼, ½, ¼ (renormalised at
 * the first and last slice): `prev`/`next` may be undefined at the volume's ends.
 */
export function smoothAcrossSlices(
  prev: Float32Array | undefined,
  cur: Float32Array,
  next: Float32Array | undefined,
): Float32Array {
  const out = new Float32Array(cur.length);
  const wp = prev ? 0.25 : 0;
  const wn = next ? 0.25 : 0;
  const norm = 1 / (0.5 + wp + wn);
  for (let i = 0; i < cur.length; i++) {
    out[i] = (0.5 * cur[i]! + (prev ? wp * prev[i]! : 0) + (next ? wn * next[i]! : 0)) * norm;
  }
  return out;
}
