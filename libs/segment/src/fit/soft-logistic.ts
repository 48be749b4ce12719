import { CuriaError } from '@curia/errors';
import { minimizeLbfgs } from '@curia/heads';

/** Training rows: N samples of F features (row-major) and their K-class target distributions. */
export interface SoftSamples {
  readonly rows: number;
  readonly features: number;
  /** N × F values. */
  readonly x: Float32Array;
  /** N × K target fractions, each row summing to 1. */
  readonly targets: Float32Array;
}

/** Options of {@link fitSoftLogistic}. */
export interface SoftLogisticOptions {
  /** Classes K. */
  readonly classes: number;
  /** L2 penalty on the (standardised) weights: mean weighted loss + l2/2 |W|². */
  readonly l2: number;
  readonly maxIterations: number;
  /** Weight each class's targets by N / (K · its total target mass), capped at 50 (class balance). */
  readonly balanced: boolean;
  readonly signal?: AbortSignal | undefined;
}

/** A linear scorer in the original feature space: scores = x · weights + bias. */
export interface LinearScorer {
  /** F × K, row-major. */
  readonly weights: Float32Array;
  /** K. */
  readonly bias: Float32Array;
}

/** Per-class weights that balance the classes' total target mass (absent classes get 0). */
export function balanceWeights(targets: Float32Array, rows: number, k: number): Float64Array {
  const mass = new Float64Array(k);
  for (let n = 0; n < rows; n++) for (let q = 0; q < k; q++) mass[q]! += targets[n * k + q]!;
  const present = mass.filter((m) => m > 0).length;
  return mass.map((m) => (m > 0 ? Math.min(50, rows / (present * m)) : 0));
}

/**
 * Multinomial logistic regression with soft targets (cross-entropy against class fractions),
 * optional class balancing and L2, minimised by L-BFGS on standardised features; the result is
 * mapped back to the original feature space. Deterministic.
 */
export async function fitSoftLogistic(s: SoftSamples, o: SoftLogisticOptions): Promise<LinearScorer> {
  const { rows: n, features: f } = s;
  const k = o.classes;
  if (n === 0) throw new CuriaError('FAILED_PRECONDITION', 'no training tokens');
  const mean = new Float64Array(f);
  const std = new Float64Array(f);
  for (let r = 0; r < n; r++) for (let j = 0; j < f; j++) mean[j]! += s.x[r * f + j]!;
  for (let j = 0; j < f; j++) mean[j]! /= n;
  for (let r = 0; r < n; r++)
    for (let j = 0; j < f; j++) {
      const d = s.x[r * f + j]! - mean[j]!;
      std[j]! += d * d;
    }
  for (let j = 0; j < f; j++) std[j] = Math.sqrt(std[j]! / Math.max(1, n - 1)) || 1;
  const z = new Float32Array(n * f);
  for (let r = 0; r < n; r++)
    for (let j = 0; j < f; j++) z[r * f + j] = (s.x[r * f + j]! - mean[j]!) / std[j]!;
  const cw = o.balanced ? balanceWeights(s.targets, n, k) : new Float64Array(k).fill(1);
  // Per-sample total weight Σ_q c_q T_nq, and the normaliser.
  const rowWeight = new Float64Array(n);
  let total = 0;
  for (let r = 0; r < n; r++) {
    let w = 0;
    for (let q = 0; q < k; q++) w += cw[q]! * s.targets[r * k + q]!;
    rowWeight[r] = w;
    total += w;
  }
  if (!(total > 0)) throw new CuriaError('FAILED_PRECONDITION', 'the training targets carry no weight');
  const logits = new Float64Array(k);
  const dz = new Float64Array(k);
  const nw = f * k;
  // Parameters: W (F × K) then bias (K).
  const objective = (p: Float64Array, grad: Float64Array): number => {
    grad.fill(0);
    let loss = 0;
    for (let r = 0; r < n; r++) {
      const wr = rowWeight[r]!;
      if (wr === 0) continue;
      const row = r * f;
      for (let q = 0; q < k; q++) logits[q] = p[nw + q]!;
      for (let j = 0; j < f; j++) {
        const xv = z[row + j]!;
        if (xv === 0) continue;
        const wj = j * k;
        for (let q = 0; q < k; q++) logits[q]! += xv * p[wj + q]!;
      }
      let m = -Infinity;
      for (let q = 0; q < k; q++) m = Math.max(m, logits[q]!);
      let sum = 0;
      for (let q = 0; q < k; q++) sum += Math.exp(logits[q]! - m);
      const lse = m + Math.log(sum);
      for (let q = 0; q < k; q++) {
        const t = cw[q]! * s.targets[r * k + q]!;
        if (t > 0) loss += t * (lse - logits[q]!);
        dz[q] = (wr * Math.exp(logits[q]! - lse) - t) / total;
      }
      for (let j = 0; j < f; j++) {
        const xv = z[row + j]!;
        if (xv === 0) continue;
        const wj = j * k;
        for (let q = 0; q < k; q++) grad[wj + q]! += xv * dz[q]!;
      }
      for (let q = 0; q < k; q++) grad[nw + q]! += dz[q]!;
    }
    loss /= total;
    for (let i = 0; i < nw; i++) {
      loss += 0.5 * o.l2 * p[i]! * p[i]!;
      grad[i]! += o.l2 * p[i]!;
    }
    return loss;
  };
  const { x: p } = await minimizeLbfgs(objective, new Float64Array(nw + k), {
    maxIter: o.maxIterations,
    gradTol: 1e-5,
    fTol: 1e-9,
    signal: o.signal,
  });
  const weights = new Float32Array(nw);
  const bias = new Float32Array(k);
  for (let q = 0; q < k; q++) bias[q] = p[nw + q]!;
  for (let j = 0; j < f; j++)
    for (let q = 0; q < k; q++) {
      const w = p[j * k + q]! / std[j]!;
      weights[j * k + q] = w;
      bias[q]! -= w * mean[j]!;
    }
  return { weights, bias };
}
