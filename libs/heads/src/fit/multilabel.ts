import { invalid } from '../errors.js';
import { minimizeLbfgs } from '../math/lbfgs.js';
import { aucBinary } from './metrics.js';
import { fitStandardizer, standardizeRows, type FeatureMatrix } from './data.js';
import { unstandardize, type LinearModel } from './linear-model.js';

/** Multilabel targets: a [rows, numLabels] row-major 0/1 indicator matrix (1 = label present). */
export interface MultiLabels {
  readonly indicators: ArrayLike<number>;
  readonly numLabels: number;
}

/** Validated multilabel targets with positives per label. */
export interface ValidMultiLabels {
  readonly y: Uint8Array;
  readonly numLabels: number;
  readonly positives: number[];
}

/** True when `labels` is a {@link MultiLabels} value. */
export function isMultiLabels(labels: unknown): labels is MultiLabels {
  return typeof labels === 'object' && labels !== null && 'indicators' in labels && 'numLabels' in labels;
}

/**
 * Checks a 0/1 indicator matrix: every label needs at least max(2, folds) positive and as many
 * negative rows (each label is a binary problem fitted and cross-validated on its own).
 */
export function validateMultiLabels(labels: MultiLabels, rows: number, folds: number): ValidMultiLabels {
  const k = labels.numLabels;
  if (!Number.isInteger(k) || k < 1) throw invalid(`numLabels must be a positive integer (got ${k})`);
  if (labels.indicators.length !== rows * k) {
    throw invalid(
      `multilabel indicators have ${labels.indicators.length} entries for ${rows} rows × ${k} labels`,
    );
  }
  const y = new Uint8Array(rows * k);
  const positives = new Array<number>(k).fill(0);
  for (let i = 0; i < rows * k; i++) {
    const v = labels.indicators[i];
    if (v !== 0 && v !== 1) throw invalid(`multilabel indicator of row ${Math.floor(i / k)} must be 0 or 1`);
    y[i] = v;
    positives[i % k]! += v;
  }
  const need = Math.max(2, folds);
  positives.forEach((p, l) => {
    if (p < need || rows - p < need) {
      throw invalid(
        `label ${l} is present in ${p} and absent in ${rows - p} sample(s); each label needs at least ${need} of each${folds >= 2 ? ` for ${folds}-fold cross-validation` : ''}`,
      );
    }
  });
  return { y, numLabels: k, positives };
}

/**
 * Fold strata for multilabel data: each row is assigned its rarest present label (or `numLabels`
 * when it has none), so rare labels spread over every fold.
 */
export function multilabelStrata(m: ValidMultiLabels, rows: number): Int32Array {
  const k = m.numLabels;
  const strata = new Int32Array(rows).fill(k);
  for (let r = 0; r < rows; r++) {
    let best = -1;
    for (let l = 0; l < k; l++) {
      if (m.y[r * k + l] && (best < 0 || m.positives[l]! < m.positives[best]!)) best = l;
    }
    if (best >= 0) strata[r] = best;
  }
  return strata;
}

/** Options of {@link fitMultiLabelLogistic}. */
export interface MultiLabelLogisticOptions {
  /** L2 penalty on the standardised weights of each label; intercepts are not penalised. */
  readonly l2: number;
  /** `balanced`: per label, positives weigh n / (2·n_pos) and negatives n / (2·n_neg). */
  readonly classWeight: 'balanced' | 'none';
  readonly maxIter: number;
  readonly signal?: AbortSignal;
}

/**
 * One independent L2-penalised binary logistic regression per label (sigmoid outputs) on the rows
 * `idx`, fitted with L-BFGS on features standardised once for all labels; returns the stacked
 * [numLabels, cols] model in raw feature units.
 */
export async function fitMultiLabelLogistic(
  x: FeatureMatrix,
  idx: readonly number[],
  m: ValidMultiLabels,
  opts: MultiLabelLogisticOptions,
): Promise<LinearModel> {
  const n = idx.length;
  const d = x.cols;
  const k = m.numLabels;
  const st = fitStandardizer(x, idx);
  const xs = standardizeRows(x, st, idx);
  const wStd = new Float64Array(k * d);
  const bStd = new Float64Array(k);
  const t = new Float64Array(n);
  const sw = new Float64Array(n);
  for (let l = 0; l < k; l++) {
    let pos = 0;
    for (let i = 0; i < n; i++) pos += t[i] = m.y[idx[i]! * k + l]!;
    const neg = n - pos;
    let swSum = 0;
    for (let i = 0; i < n; i++) {
      sw[i] = opts.classWeight === 'balanced' && pos > 0 && neg > 0 ? n / (2 * (t[i] ? pos : neg)) : 1;
      swSum += sw[i]!;
    }
    const objective = (theta: Float64Array, grad: Float64Array): number => {
      grad.fill(0);
      let loss = 0;
      for (let i = 0; i < n; i++) {
        const xo = i * d;
        let z = theta[d]!;
        for (let j = 0; j < d; j++) z += theta[j]! * xs[xo + j]!;
        // log(1 + e^z) − t·z, computed stably.
        const softplus = z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
        const wi = sw[i]! / swSum;
        loss += wi * (softplus - t[i]! * z);
        const p = z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
        const coef = wi * (p - t[i]!);
        for (let j = 0; j < d; j++) grad[j]! += coef * xs[xo + j]!;
        grad[d]! += coef;
      }
      let pen = 0;
      for (let j = 0; j < d; j++) {
        pen += theta[j]! * theta[j]!;
        grad[j]! += opts.l2 * theta[j]!;
      }
      return loss + 0.5 * opts.l2 * pen;
    };
    const res = await minimizeLbfgs(objective, new Float64Array(d + 1), {
      maxIter: opts.maxIter,
      gradTol: 1e-7,
      signal: opts.signal,
    });
    wStd.set(res.x.subarray(0, d), l * d);
    bStd[l] = res.x[d]!;
  }
  return unstandardize(wStd, bStd, k, st);
}

/**
 * Cross-validation metrics of multilabel scores [rows, numLabels] (logits) against the test rows:
 * `auc` = mean over labels of the per-label ROC AUC (labels with one class in the test rows are
 * skipped), `accuracy` = label-wise (Hamming) accuracy at probability 0.5, `balanced_accuracy` =
 * mean over labels of the per-label balanced accuracy at 0.5.
 */
export function multilabelMetrics(
  m: ValidMultiLabels,
  test: readonly number[],
  scores: Float64Array,
): Record<string, number> {
  const k = m.numLabels;
  const n = test.length;
  let aucSum = 0;
  let aucN = 0;
  let correct = 0;
  let balSum = 0;
  let balN = 0;
  const score = new Float64Array(n);
  const truth = new Uint8Array(n);
  for (let l = 0; l < k; l++) {
    let tp = 0;
    let tn = 0;
    let pos = 0;
    for (let i = 0; i < n; i++) {
      score[i] = scores[i * k + l]!;
      truth[i] = m.y[test[i]! * k + l]!;
      const predicted = score[i]! >= 0 ? 1 : 0;
      pos += truth[i]!;
      if (predicted === truth[i]) {
        correct++;
        if (truth[i]) tp++;
        else tn++;
      }
    }
    const a = aucBinary(score, truth);
    if (!Number.isNaN(a)) {
      aucSum += a;
      aucN++;
    }
    if (pos > 0 && pos < n) {
      balSum += (tp / pos + tn / (n - pos)) / 2;
      balN++;
    }
  }
  return {
    accuracy: correct / (n * k),
    balanced_accuracy: balN > 0 ? balSum / balN : NaN,
    auc: aucN > 0 ? aucSum / aucN : NaN,
  };
}
