import { yieldAndCheck } from '../errors.js';

/** Objective: returns f(x) and writes ∇f(x) into `grad`. */
export type Objective = (x: Float64Array, grad: Float64Array) => number;

/** Options of {@link minimizeLbfgs}. */
export interface LbfgsOptions {
  readonly maxIter?: number;
  /** Stop when max |∇f| falls below this. */
  readonly gradTol?: number;
  /** Stop when the relative decrease of f falls below this. */
  readonly fTol?: number;
  /** History size. */
  readonly memory?: number;
  readonly signal?: AbortSignal;
}

/** Result of {@link minimizeLbfgs}. */
export interface LbfgsResult {
  readonly x: Float64Array;
  readonly f: number;
  readonly iterations: number;
  readonly converged: boolean;
}

function dot64(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/**
 * Limited-memory BFGS (two-loop recursion) with a backtracking Armijo line search, for smooth
 * convex objectives such as penalised logistic regression. Deterministic.
 */
export async function minimizeLbfgs(
  fn: Objective,
  x0: Float64Array,
  opts: LbfgsOptions = {},
): Promise<LbfgsResult> {
  const n = x0.length;
  const maxIter = opts.maxIter ?? 500;
  const gradTol = opts.gradTol ?? 1e-6;
  const fTol = opts.fTol ?? 1e-12;
  const m = opts.memory ?? 10;
  const x = Float64Array.from(x0);
  const g = new Float64Array(n);
  let f = fn(x, g);
  const sHist: Float64Array[] = [];
  const yHist: Float64Array[] = [];
  const rho: number[] = [];
  const dir = new Float64Array(n);
  const xNew = new Float64Array(n);
  const gNew = new Float64Array(n);
  const alpha = new Float64Array(m);
  let iter = 0;
  let converged = maxAbs(g) < gradTol;
  while (!converged && iter < maxIter) {
    if (iter % 10 === 9) await yieldAndCheck(opts.signal, 'fitting');
    iter++;
    // Two-loop recursion: dir = -H·g.
    for (let i = 0; i < n; i++) dir[i] = -g[i]!;
    const k = sHist.length;
    for (let j = k - 1; j >= 0; j--) {
      alpha[j] = rho[j]! * dot64(sHist[j]!, dir);
      const y = yHist[j]!;
      for (let i = 0; i < n; i++) dir[i]! -= alpha[j]! * y[i]!;
    }
    if (k > 0) {
      const gamma = dot64(sHist[k - 1]!, yHist[k - 1]!) / dot64(yHist[k - 1]!, yHist[k - 1]!);
      for (let i = 0; i < n; i++) dir[i]! *= gamma;
    } else {
      const s = 1 / Math.max(1, Math.sqrt(dot64(g, g)));
      for (let i = 0; i < n; i++) dir[i]! *= s;
    }
    for (let j = 0; j < k; j++) {
      const beta = rho[j]! * dot64(yHist[j]!, dir);
      const s = sHist[j]!;
      for (let i = 0; i < n; i++) dir[i]! += (alpha[j]! - beta) * s[i]!;
    }
    let slope = dot64(g, dir);
    if (!(slope < 0)) {
      // Not a descent direction (numerical trouble): restart from steepest descent.
      sHist.length = 0;
      yHist.length = 0;
      rho.length = 0;
      for (let i = 0; i < n; i++) dir[i] = -g[i]!;
      slope = -dot64(g, g);
    }
    let step = 1;
    let fNew = Infinity;
    for (let ls = 0; ls < 40; ls++) {
      for (let i = 0; i < n; i++) xNew[i] = x[i]! + step * dir[i]!;
      fNew = fn(xNew, gNew);
      if (fNew <= f + 1e-4 * step * slope) break;
      step *= 0.5;
    }
    if (!(fNew <= f)) break;
    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = xNew[i]! - x[i]!;
      y[i] = gNew[i]! - g[i]!;
    }
    const sy = dot64(s, y);
    if (sy > 1e-12) {
      if (sHist.length === m) {
        sHist.shift();
        yHist.shift();
        rho.shift();
      }
      sHist.push(s);
      yHist.push(y);
      rho.push(1 / sy);
    }
    const rel = (f - fNew) / Math.max(Math.abs(f), Math.abs(fNew), 1);
    x.set(xNew);
    g.set(gNew);
    f = fNew;
    converged = maxAbs(g) < gradTol || rel < fTol;
  }
  return { x, f, iterations: iter, converged };
}
