import { CuriaError } from '@curia/errors';

import { solveSpd } from '../math/cholesky.js';
import { fitStandardizer, standardizeRows, type FeatureMatrix } from './data.js';
import { unstandardize, type LinearModel } from './linear-model.js';

/**
 * Ridge regression in closed form on the rows `idx`: β = (XsᵀXs + λI)⁻¹ Xsᵀ(y − ȳ) on
 * standardised features (Cholesky), intercept unpenalised, returned in raw feature units.
 */
export function fitRidge(x: FeatureMatrix, idx: readonly number[], y: Float64Array, l2: number): LinearModel {
  const n = idx.length;
  const d = x.cols;
  const st = fitStandardizer(x, idx);
  const xs = standardizeRows(x, st, idx);
  let ym = 0;
  for (const i of idx) ym += y[i]!;
  ym /= n;
  const a = new Float64Array(d * d);
  const b = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    const o = r * d;
    const yr = y[idx[r]!]! - ym;
    for (let i = 0; i < d; i++) {
      const xi = xs[o + i]!;
      if (xi === 0) continue;
      b[i]! += xi * yr;
      const ai = i * d;
      for (let j = 0; j <= i; j++) a[ai + j]! += xi * xs[o + j]!;
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < i; j++) a[j * d + i] = a[i * d + j]!;
    a[i * d + i]! += l2;
  }
  const beta = solveSpd(a, d, b);
  if (!beta) throw new CuriaError('INTERNAL', 'ridge normal equations are singular; increase l2');
  return unstandardize(beta, Float64Array.of(ym), 1, st);
}
