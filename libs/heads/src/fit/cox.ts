import { CuriaError } from '@curia/errors';

import { yieldAndCheck } from '../errors.js';
import { solveSpd } from '../math/cholesky.js';
import { fitStandardizer, standardizeRows, type FeatureMatrix } from './data.js';
import { unstandardize, type LinearModel } from './linear-model.js';

/** How tied event times enter the partial likelihood. */
export type CoxTies = 'efron' | 'breslow';

/** Options of {@link fitCox}. */
export interface CoxOptions {
  readonly ties: CoxTies;
  /** L2 penalty on the standardised coefficients. */
  readonly l2: number;
  readonly maxIter: number;
  readonly signal?: AbortSignal;
}

/** A fitted Cox model in raw feature units with its Breslow baseline cumulative hazard. */
export interface CoxFit {
  /** risk = weight·x + bias (the bias centres the risk at the training mean). */
  readonly model: LinearModel;
  readonly baselineTimes: Float64Array;
  readonly baselineCumHazard: Float64Array;
  readonly logLik: number;
  readonly iterations: number;
  readonly converged: boolean;
}

interface Groups {
  /** Row positions (into the standardised matrix) sorted by time descending. */
  readonly order: Int32Array;
  /** Start offsets into `order` of each distinct-time group, plus a final sentinel. */
  readonly starts: number[];
}

function groupByTime(time: Float64Array): Groups {
  const order = Int32Array.from(time.keys()).sort((a, b) => time[b]! - time[a]! || a - b);
  const starts: number[] = [];
  for (let i = 0; i < order.length; i++)
    if (i === 0 || time[order[i]!] !== time[order[i - 1]!]) starts.push(i);
  starts.push(order.length);
  return { order, starts };
}

/**
 * Penalised partial log-likelihood, gradient and Hessian of a Cox model at β (standardised
 * features `xs` [n, p]), with Efron or Breslow handling of ties.
 */
function coxDerivatives(
  xs: Float64Array,
  p: number,
  event: Uint8Array,
  g: Groups,
  beta: Float64Array,
  opts: CoxOptions,
  wantHessian: boolean,
): { ll: number; grad: Float64Array; hess: Float64Array } {
  const n = event.length;
  const eta = new Float64Array(n);
  let c = -Infinity;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < p; j++) s += xs[i * p + j]! * beta[j]!;
    eta[i] = s;
    if (s > c) c = s;
  }
  const grad = new Float64Array(p);
  const hess = new Float64Array(wantHessian ? p * p : 0);
  const s1 = new Float64Array(p);
  const s2 = new Float64Array(wantHessian ? p * p : 0);
  const d1 = new Float64Array(p);
  const d2 = new Float64Array(wantHessian ? p * p : 0);
  const a1 = new Float64Array(p);
  let s0 = 0;
  let ll = 0;
  for (let gi = 0; gi + 1 < g.starts.length; gi++) {
    let d0 = 0;
    let dCount = 0;
    d1.fill(0);
    if (wantHessian) d2.fill(0);
    for (let k = g.starts[gi]!; k < g.starts[gi + 1]!; k++) {
      const i = g.order[k]!;
      const w = Math.exp(eta[i]! - c);
      const xo = i * p;
      s0 += w;
      for (let a = 0; a < p; a++) s1[a]! += w * xs[xo + a]!;
      if (wantHessian)
        for (let a = 0; a < p; a++)
          for (let b = 0; b <= a; b++) s2[a * p + b]! += w * xs[xo + a]! * xs[xo + b]!;
      if (event[i]) {
        dCount++;
        d0 += w;
        ll += eta[i]!;
        for (let a = 0; a < p; a++) {
          d1[a]! += w * xs[xo + a]!;
          grad[a]! += xs[xo + a]!;
        }
        if (wantHessian)
          for (let a = 0; a < p; a++)
            for (let b = 0; b <= a; b++) d2[a * p + b]! += w * xs[xo + a]! * xs[xo + b]!;
      }
    }
    for (let l = 0; l < dCount; l++) {
      const f = opts.ties === 'efron' ? l / dCount : 0;
      const t0 = s0 - f * d0;
      ll -= Math.log(t0) + c;
      for (let a = 0; a < p; a++) {
        a1[a] = (s1[a]! - f * d1[a]!) / t0;
        grad[a]! -= a1[a]!;
      }
      if (wantHessian) {
        for (let a = 0; a < p; a++) {
          for (let b = 0; b <= a; b++) {
            hess[a * p + b]! -= (s2[a * p + b]! - f * d2[a * p + b]!) / t0 - a1[a]! * a1[b]!;
          }
        }
      }
    }
  }
  for (let a = 0; a < p; a++) {
    ll -= 0.5 * opts.l2 * beta[a]! * beta[a]!;
    grad[a]! -= opts.l2 * beta[a]!;
    if (wantHessian) hess[a * p + a]! -= opts.l2;
  }
  if (wantHessian) for (let a = 0; a < p; a++) for (let b = 0; b < a; b++) hess[b * p + a] = hess[a * p + b]!;
  return { ll, grad, hess };
}

/**
 * Cox proportional-hazards regression on rows `idx` by Newton–Raphson with step halving, on
 * internally standardised features, then the Breslow baseline cumulative hazard
 * H0(t) = Σ_{t_i ≤ t} d_i / Σ_{j ∈ R(t_i)} exp(risk_j).
 */
export async function fitCox(
  x: FeatureMatrix,
  idx: readonly number[],
  time: Float64Array,
  event: Uint8Array,
  opts: CoxOptions,
): Promise<CoxFit> {
  const p = x.cols;
  const st = fitStandardizer(x, idx);
  const xs = standardizeRows(x, st, idx);
  const t = Float64Array.from(idx, (i) => time[i]!);
  const e = Uint8Array.from(idx, (i) => event[i]!);
  const groups = groupByTime(t);
  let beta = new Float64Array(p);
  let cur = coxDerivatives(xs, p, e, groups, beta, opts, true);
  let iterations = 0;
  let converged = false;
  while (iterations < opts.maxIter && !converged) {
    await yieldAndCheck(opts.signal, 'Cox fitting');
    iterations++;
    const negH = Float64Array.from(cur.hess, (v) => -v);
    const delta = solveSpd(negH, p, cur.grad);
    if (!delta) throw new CuriaError('INTERNAL', 'Cox Hessian is singular; increase l2');
    let step = 1;
    let next = cur;
    let candidate = beta;
    for (let h = 0; h < 30; h++) {
      candidate = Float64Array.from(beta, (b, j) => b + step * delta[j]!);
      next = coxDerivatives(xs, p, e, groups, candidate, opts, true);
      if (Number.isFinite(next.ll) && next.ll >= cur.ll - 1e-12) break;
      step *= 0.5;
    }
    const gain = next.ll - cur.ll;
    let maxStep = 0;
    for (let j = 0; j < p; j++) maxStep = Math.max(maxStep, Math.abs(candidate[j]! - beta[j]!));
    beta = candidate;
    cur = next;
    converged = Math.abs(gain) < 1e-10 * (Math.abs(cur.ll) + 1) || maxStep < 1e-9;
  }
  const model = unstandardize(beta, new Float64Array(1), 1, st);
  // Breslow baseline on the same linear predictor the head will use.
  const n = idx.length;
  const risk = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let j = 0; j < p; j++) s += xs[r * p + j]! * beta[j]!;
    risk[r] = Math.exp(s);
  }
  const times: number[] = [];
  const hz: number[] = [];
  let s0 = 0;
  const stepAt: { time: number; inc: number }[] = [];
  for (let gi = 0; gi + 1 < groups.starts.length; gi++) {
    let d = 0;
    for (let k = groups.starts[gi]!; k < groups.starts[gi + 1]!; k++) {
      const i = groups.order[k]!;
      s0 += risk[i]!;
      d += e[i]!;
    }
    if (d > 0) stepAt.push({ time: t[groups.order[groups.starts[gi]!]!]!, inc: d / s0 });
  }
  let cum = 0;
  for (let k = stepAt.length - 1; k >= 0; k--) {
    cum += stepAt[k]!.inc;
    times.push(stepAt[k]!.time);
    hz.push(cum);
  }
  return {
    model,
    baselineTimes: Float64Array.from(times),
    baselineCumHazard: Float64Array.from(hz),
    logLik: cur.ll,
    iterations,
    converged,
  };
}
