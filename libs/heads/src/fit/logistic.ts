import { minimizeLbfgs } from '../math/lbfgs.js';
import { fitStandardizer, standardizeRows, type FeatureMatrix } from './data.js';
import { unstandardize, type LinearModel } from './linear-model.js';

/** Options of {@link fitLogistic}. */
export interface LogisticOptions {
  /** L2 penalty on the (standardised) weights; the intercept is not penalised. */
  readonly l2: number;
  /** `balanced`: weight class c by n / (K · n_c), as scikit-learn. */
  readonly classWeight: 'balanced' | 'none';
  readonly maxIter: number;
  readonly signal?: AbortSignal;
}

/** A fitted multinomial logistic regression plus solver diagnostics. */
export interface LogisticFit extends LinearModel {
  readonly iterations: number;
  readonly converged: boolean;
}

/**
 * Multinomial logistic regression on the rows `idx`: minimises the (class-)weighted mean cross
 * entropy + l2/2 · ‖W‖² with L-BFGS on internally standardised features, then folds the scaling
 * into the returned weights (raw feature units).
 */
export async function fitLogistic(
  x: FeatureMatrix,
  idx: readonly number[],
  y: Int32Array,
  numClasses: number,
  opts: LogisticOptions,
): Promise<LogisticFit> {
  const n = idx.length;
  const d = x.cols;
  const k = numClasses;
  const st = fitStandardizer(x, idx);
  const xs = standardizeRows(x, st, idx);
  const yi = Int32Array.from(idx, (i) => y[i]!);
  const counts = new Float64Array(k);
  for (let i = 0; i < n; i++) counts[yi[i]!]!++;
  const sw = new Float64Array(n);
  let swSum = 0;
  for (let i = 0; i < n; i++) {
    const c = yi[i]!;
    sw[i] = opts.classWeight === 'balanced' ? n / (k * counts[c]!) : 1;
    swSum += sw[i]!;
  }
  const nw = k * d;
  const z = new Float64Array(k);
  const objective = (theta: Float64Array, grad: Float64Array): number => {
    grad.fill(0);
    let loss = 0;
    for (let i = 0; i < n; i++) {
      const xo = i * d;
      let m = -Infinity;
      for (let c = 0; c < k; c++) {
        let s = theta[nw + c]!;
        const wo = c * d;
        for (let j = 0; j < d; j++) s += theta[wo + j]! * xs[xo + j]!;
        z[c] = s;
        if (s > m) m = s;
      }
      let se = 0;
      for (let c = 0; c < k; c++) se += Math.exp(z[c]! - m);
      const lse = m + Math.log(se);
      const wi = sw[i]! / swSum;
      loss += wi * (lse - z[yi[i]!]!);
      for (let c = 0; c < k; c++) {
        const coef = wi * (Math.exp(z[c]! - lse) - (c === yi[i] ? 1 : 0));
        if (coef === 0) continue;
        const wo = c * d;
        for (let j = 0; j < d; j++) grad[wo + j]! += coef * xs[xo + j]!;
        grad[nw + c]! += coef;
      }
    }
    let pen = 0;
    for (let j = 0; j < nw; j++) {
      pen += theta[j]! * theta[j]!;
      grad[j]! += opts.l2 * theta[j]!;
    }
    return loss + 0.5 * opts.l2 * pen;
  };
  const res = await minimizeLbfgs(objective, new Float64Array(nw + k), {
    maxIter: opts.maxIter,
    gradTol: 1e-7,
    signal: opts.signal,
  });
  const model = unstandardize(res.x.subarray(0, nw), res.x.subarray(nw), k, st);
  return { ...model, iterations: res.iterations, converged: res.converged };
}
