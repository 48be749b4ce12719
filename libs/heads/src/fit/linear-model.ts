import type { FeatureMatrix, Standardizer } from './data.js';

/** An affine map in original feature units: out = W x + b, W [outputs, cols]. */
export interface LinearModel {
  readonly weight: Float64Array;
  readonly bias: Float64Array;
  readonly outputs: number;
  readonly cols: number;
}

/**
 * Folds standardisation into the weights: a model fitted on (x − μ)/σ becomes
 * W' = W/σ, b' = b − W'·μ on raw features.
 */
export function unstandardize(
  wStd: Float64Array,
  bStd: Float64Array,
  outputs: number,
  s: Standardizer,
): LinearModel {
  const cols = s.mean.length;
  const weight = new Float64Array(outputs * cols);
  const bias = Float64Array.from(bStd);
  for (let o = 0; o < outputs; o++) {
    let shift = 0;
    for (let c = 0; c < cols; c++) {
      const w = wStd[o * cols + c]! / s.std[c]!;
      weight[o * cols + c] = w;
      shift += w * s.mean[c]!;
    }
    bias[o]! -= shift;
  }
  return { weight, bias, outputs, cols };
}

/** Applies a linear model to the given rows: [rows.length, outputs]. */
export function predictLinear(m: LinearModel, x: FeatureMatrix, rows: ArrayLike<number>): Float64Array {
  const out = new Float64Array(rows.length * m.outputs);
  for (let r = 0; r < rows.length; r++) {
    const xo = rows[r]! * m.cols;
    for (let o = 0; o < m.outputs; o++) {
      let s = m.bias[o]!;
      const wo = o * m.cols;
      for (let c = 0; c < m.cols; c++) s += m.weight[wo + c]! * x.data[xo + c]!;
      out[r * m.outputs + o] = s;
    }
  }
  return out;
}
