import { gridTaps, type GridTaps } from '@curia/volume';

/** How scores are turned into a class per pixel. */
export type ScoreKind = 'logits' | 'probabilities';

/** One canonical slice's answer: the class index and its probability at every pixel. */
export interface SlicePrediction {
  /** rows × cols class indices (0 = background), row-major. */
  readonly classes: Uint8Array;
  /** rows × cols probability of the chosen class. */
  readonly confidence: Float32Array;
}

/**
 * Samples per-token class scores back onto a canonical slice of rows × cols pixels: at every pixel
 * centre the scores are interpolated from the surrounding tokens with the Keys cubic kernel
 * (a = −0.5, the kernel of the image resize) at token coordinates (s + 0.5)·G/n − 0.5 (the
 * align_corners=False convention of the resize to the model grid), and the best class wins.
 * Logits become probabilities by a softmax after interpolation; probabilities (e.g. class
 * fractions) are used as they are.
 */
export class TokenSampler {
  private readonly rowTaps: GridTaps;
  private readonly colTaps: GridTaps;
  /** One canonical row's scores interpolated along rows: K × G. */
  private readonly rowScores: Float32Array;
  private readonly v: Float32Array;

  constructor(
    readonly rows: number,
    readonly cols: number,
    /** Token grid side G. */
    readonly grid: number,
    /** Classes including background. */
    readonly classCount: number,
  ) {
    this.rowTaps = gridTaps(rows, grid, 'cubic');
    this.colTaps = gridTaps(cols, grid, 'cubic');
    this.rowScores = new Float32Array(classCount * grid);
    this.v = new Float32Array(classCount);
  }

  /**
   * Classes of one slice from `scores`: K·G·G values, class-major ([K, G, G], as a 1×1 or 3×3
   * convolution head outputs them).
   */
  sample(scores: Float32Array, kind: ScoreKind, out?: SlicePrediction): SlicePrediction {
    const { rows, cols, grid: g, classCount: k, rowScores, v } = this;
    const plane = g * g;
    const res = out ?? { classes: new Uint8Array(rows * cols), confidence: new Float32Array(rows * cols) };
    const rt = this.rowTaps;
    const ct = this.colTaps;
    for (let r = 0; r < rows; r++) {
      rowScores.fill(0);
      for (let a = 0; a < rt.taps; a++) {
        const w = rt.weight[r * rt.taps + a]!;
        if (w === 0) continue;
        const src = rt.index[r * rt.taps + a]! * g;
        for (let q = 0; q < k; q++) {
          const o = q * plane + src;
          const d = q * g;
          for (let x = 0; x < g; x++) rowScores[d + x]! += w * scores[o + x]!;
        }
      }
      for (let c = 0; c < cols; c++) {
        const o = c * ct.taps;
        let best = 0;
        for (let q = 0; q < k; q++) {
          const d = q * g;
          let s = 0;
          for (let b = 0; b < ct.taps; b++) s += ct.weight[o + b]! * rowScores[d + ct.index[o + b]!]!;
          v[q] = s;
          if (s > v[best]!) best = q;
        }
        let p = v[best]!;
        if (kind === 'logits') {
          let sum = 0;
          for (let q = 0; q < k; q++) sum += Math.exp(v[q]! - p);
          p = 1 / sum;
        }
        const i = r * cols + c;
        res.classes[i] = best;
        res.confidence[i] = Math.min(1, Math.max(0, p));
      }
    }
    return res;
  }
}
