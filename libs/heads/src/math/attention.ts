import { CuriaError } from '@curia/errors';

import { yieldAndCheck } from '../errors.js';
import { dot, dot4, layerNormRows, linear } from './dense.js';

/** Weights of one Curia attention block: torch `nn.MultiheadAttention` + LayerNorm. */
export interface MhaWeights {
  /** [3·dim, dim]: query, key and value projections stacked, as torch `in_proj_weight`. */
  readonly inProjWeight: Float32Array;
  readonly inProjBias: Float32Array;
  /** [dim, dim] */
  readonly outProjWeight: Float32Array;
  readonly outProjBias: Float32Array;
  readonly normWeight: Float32Array;
  readonly normBias: Float32Array;
}

/** Curia's `AttentionModule`: an ordered list of self / cross blocks, then a mean over rows. */
export interface AttentionModuleWeights {
  readonly dim: number;
  readonly numHeads: number;
  readonly blocks: readonly ('self' | 'cross')[];
  readonly self?: MhaWeights;
  readonly cross?: MhaWeights & {
    /** [numQueries, dim] */ readonly learnedQueries: Float32Array;
    readonly numQueries: number;
  };
}

/** LayerNorm eps of torch `nn.LayerNorm` defaults, used by Curia's attention blocks. */
export const ATTENTION_LN_EPS = 1e-5;
const ROWS_PER_YIELD = 256;

/** 1 for rows with any non-zero value, 0 for all-zero (padding) rows, as Curia's `(x != 0).any(-1)`. */
export function nonZeroRows(x: Float32Array, rows: number, dim: number): Uint8Array {
  const valid = new Uint8Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    for (let i = 0; i < dim; i++) {
      if (x[o + i] !== 0) {
        valid[r] = 1;
        break;
      }
    }
  }
  return valid;
}

/** Queries [lq, dim] attending over key/value rows [lk, dim] with one block's weights. */
export interface AttentionCall {
  readonly q: Float32Array;
  readonly lq: number;
  readonly kv: Float32Array;
  readonly lk: number;
  readonly dim: number;
  readonly numHeads: number;
  readonly w: MhaWeights;
  /** 1 for key rows that are not padding. */
  readonly keyValid: Uint8Array;
}

/**
 * torch `MultiheadAttention(query, key=value=kv)` with Curia's masks. In `self` mode a query
 * attends to keys with the same validity (valid↔valid, padding↔padding — Curia's NaN guard);
 * in `cross` mode every query attends to the valid keys only. Returns [lq, dim] after out_proj.
 */
export async function multiHeadAttention(
  call: AttentionCall,
  mode: 'self' | 'cross',
  signal?: AbortSignal,
): Promise<Float32Array> {
  const { q, lq, kv, lk, dim, numHeads, w, keyValid } = call;
  const dh = dim / numHeads;
  const scale = 1 / Math.sqrt(dh);
  const qp = linear(q, lq, dim, w.inProjWeight, w.inProjBias, dim, undefined, 0);
  for (let i = 0; i < qp.length; i++) qp[i] = qp[i]! * scale;
  const kp = linear(kv, lk, dim, w.inProjWeight, w.inProjBias, dim, undefined, dim);
  const vp = linear(kv, lk, dim, w.inProjWeight, w.inProjBias, dim, undefined, 2 * dim);
  const ctx = new Float32Array(lq * dim);
  const scores = new Float64Array(4 * lk);
  const acc = new Float64Array(4 * dh);
  const noKey = (): CuriaError =>
    new CuriaError('INVALID_ARGUMENT', 'attention input has no non-padding token (all token rows are zero)');
  // One query row (any mask pattern).
  const attendOne = (i: number, ho: number): void => {
    const want = mode === 'self' ? keyValid[i]! : 1;
    let m = -Infinity;
    for (let j = 0; j < lk; j++) {
      if (keyValid[j] !== want) {
        scores[j] = -Infinity;
        continue;
      }
      const s = dot(qp, i * dim + ho, kp, j * dim + ho, dh);
      scores[j] = s;
      if (s > m) m = s;
    }
    if (m === -Infinity) throw noKey();
    acc.fill(0, 0, dh);
    let sum = 0;
    for (let j = 0; j < lk; j++) {
      const sj = scores[j]!;
      if (sj === -Infinity) continue;
      const p = Math.exp(sj - m);
      sum += p;
      const vo = j * dim + ho;
      for (let t = 0; t < dh; t++) acc[t]! += p * vp[vo + t]!;
    }
    const co = i * dim + ho;
    for (let t = 0; t < dh; t++) ctx[co + t] = acc[t]! / sum;
  };
  // Four query rows with the same mask: every key/value row load is shared by the four.
  const attendFour = (i: number, ho: number, want: number): void => {
    const a0 = i * dim + ho;
    const a1 = a0 + dim;
    const a2 = a1 + dim;
    const a3 = a2 + dim;
    let m0 = -Infinity;
    let m1 = -Infinity;
    let m2 = -Infinity;
    let m3 = -Infinity;
    for (let j = 0; j < lk; j++) {
      const so = 4 * j;
      if (keyValid[j] !== want) {
        scores[so] = scores[so + 1] = scores[so + 2] = scores[so + 3] = -Infinity;
        continue;
      }
      dot4(qp, a0, dim, kp, j * dim + ho, dh, scores, so);
      if (scores[so]! > m0) m0 = scores[so]!;
      if (scores[so + 1]! > m1) m1 = scores[so + 1]!;
      if (scores[so + 2]! > m2) m2 = scores[so + 2]!;
      if (scores[so + 3]! > m3) m3 = scores[so + 3]!;
    }
    if (m0 === -Infinity) throw noKey();
    acc.fill(0);
    let z0 = 0;
    let z1 = 0;
    let z2 = 0;
    let z3 = 0;
    for (let j = 0; j < lk; j++) {
      const so = 4 * j;
      if (scores[so] === -Infinity) continue;
      const p0 = Math.exp(scores[so]! - m0);
      const p1 = Math.exp(scores[so + 1]! - m1);
      const p2 = Math.exp(scores[so + 2]! - m2);
      const p3 = Math.exp(scores[so + 3]! - m3);
      z0 += p0;
      z1 += p1;
      z2 += p2;
      z3 += p3;
      const vo = j * dim + ho;
      for (let t = 0; t < dh; t++) {
        const v = vp[vo + t]!;
        acc[t]! += p0 * v;
        acc[dh + t]! += p1 * v;
        acc[2 * dh + t]! += p2 * v;
        acc[3 * dh + t]! += p3 * v;
      }
    }
    for (let t = 0; t < dh; t++) {
      ctx[a0 + t] = acc[t]! / z0;
      ctx[a1 + t] = acc[dh + t]! / z1;
      ctx[a2 + t] = acc[2 * dh + t]! / z2;
      ctx[a3 + t] = acc[3 * dh + t]! / z3;
    }
  };
  for (let i = 0; i < lq; i += 4) {
    if (i > 0 && i % ROWS_PER_YIELD === 0) await yieldAndCheck(signal, 'attention');
    const wantOf = (r: number): number => (mode === 'self' ? keyValid[r]! : 1);
    const uniform =
      i + 3 < lq && wantOf(i) === wantOf(i + 1) && wantOf(i) === wantOf(i + 2) && wantOf(i) === wantOf(i + 3);
    for (let h = 0; h < numHeads; h++) {
      const ho = h * dh;
      if (uniform) attendFour(i, ho, wantOf(i));
      else for (let r = i; r < Math.min(i + 4, lq); r++) attendOne(r, ho);
    }
  }
  return linear(ctx, lq, dim, w.outProjWeight, w.outProjBias, dim);
}

/**
 * Cross-attention of a few queries over many tokens, computed without projecting the tokens:
 * qₕ·(W_k x + b_k)ₕ = (W_kₕᵀ qₕ)·x + qₕ·b_kₕ and Σⱼ pⱼ (W_v xⱼ + b_v)ₕ = W_vₕ (Σⱼ pⱼ xⱼ) + b_vₕ
 * (softmax weights sum to 1). Exactly the same function as {@link multiHeadAttention} in
 * `cross` mode, at O(queries·heads·L·dim) instead of O(L·dim²): ~dim/(queries·heads) times fewer
 * multiply-adds for long volumes.
 */
export async function foldedCrossAttention(call: AttentionCall, signal?: AbortSignal): Promise<Float32Array> {
  const { q, lq, kv, lk, dim, numHeads, w, keyValid } = call;
  const dh = dim / numHeads;
  const scale = 1 / Math.sqrt(dh);
  const qp = linear(q, lq, dim, w.inProjWeight, w.inProjBias, dim, undefined, 0);
  const nq = lq * numHeads;
  // Row (i·H + h) of qTilde is W_kₕᵀ·qₕ(i)·scale; cst is the bias term of the score.
  const qTilde = new Float32Array(nq * dim);
  const cst = new Float64Array(nq);
  const wk = w.inProjWeight;
  for (let i = 0; i < lq; i++) {
    for (let h = 0; h < numHeads; h++) {
      const row = (i * numHeads + h) * dim;
      let c0 = 0;
      for (let t = 0; t < dh; t++) {
        const qv = qp[i * dim + h * dh + t]! * scale;
        if (qv === 0) continue;
        const ko = (dim + h * dh + t) * dim;
        c0 += qv * w.inProjBias[dim + h * dh + t]!;
        for (let c = 0; c < dim; c++) qTilde[row + c]! += qv * wk[ko + c]!;
      }
      cst[i * numHeads + h] = c0;
    }
  }
  await yieldAndCheck(signal, 'attention');
  const scores = linear(kv, lk, dim, qTilde, null, nq);
  const maxS = new Float64Array(nq).fill(-Infinity);
  for (let j = 0; j < lk; j++) {
    if (!keyValid[j]) continue;
    for (let r = 0; r < nq; r++) maxS[r] = Math.max(maxS[r]!, scores[j * nq + r]! + cst[r]!);
  }
  if (nq > 0 && maxS[0] === -Infinity) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      'attention input has no non-padding token (all token rows are zero)',
    );
  }
  const xbar = new Float64Array(nq * dim);
  const sum = new Float64Array(nq);
  for (let j = 0; j < lk; j++) {
    if (!keyValid[j]) continue;
    const xo = j * dim;
    for (let r = 0; r < nq; r++) {
      const p = Math.exp(scores[j * nq + r]! + cst[r]! - maxS[r]!);
      sum[r]! += p;
      const ro = r * dim;
      for (let c = 0; c < dim; c++) xbar[ro + c]! += p * kv[xo + c]!;
    }
  }
  const ctx = new Float32Array(lq * dim);
  for (let i = 0; i < lq; i++) {
    for (let h = 0; h < numHeads; h++) {
      const r = i * numHeads + h;
      const ro = r * dim;
      const inv = 1 / sum[r]!;
      for (let t = 0; t < dh; t++) {
        const vo = (2 * dim + h * dh + t) * dim;
        let s = 0;
        for (let c = 0; c < dim; c++) s += w.inProjWeight[vo + c]! * xbar[ro + c]!;
        ctx[i * dim + h * dh + t] = s * inv + w.inProjBias[2 * dim + h * dh + t]!;
      }
    }
  }
  return linear(ctx, lq, dim, w.outProjWeight, w.outProjBias, dim);
}

/**
 * Curia `AttentionModule.forward` for one volume: tokens [rows, dim] → pooled [dim].
 * Padding (all-zero rows) is re-detected before every block, exactly as Curia does.
 */
export async function attentionModuleForward(
  tokens: Float32Array,
  rows: number,
  m: AttentionModuleWeights,
  signal?: AbortSignal,
): Promise<Float32Array> {
  const d = m.dim;
  let x = tokens;
  let n = rows;
  for (const block of m.blocks) {
    const valid = nonZeroRows(x, n, d);
    if (block === 'self') {
      const w = m.self!;
      const call = { q: x, lq: n, kv: x, lk: n, dim: d, numHeads: m.numHeads, w, keyValid: valid };
      const a = await multiHeadAttention(call, 'self', signal);
      for (let i = 0; i < a.length; i++) a[i] = a[i]! + x[i]!;
      layerNormRows(a, n, d, w.normWeight, w.normBias, ATTENTION_LN_EPS);
      x = a;
    } else {
      const w = m.cross!;
      // Folding the key/value projections into the queries wins whenever queries·heads < tokens.
      const call = {
        q: w.learnedQueries,
        lq: w.numQueries,
        kv: x,
        lk: n,
        dim: d,
        numHeads: m.numHeads,
        w,
        keyValid: valid,
      };
      const a =
        w.numQueries * m.numHeads < n
          ? await foldedCrossAttention(call, signal)
          : await multiHeadAttention(call, 'cross', signal);
      for (let i = 0; i < a.length; i++) a[i] = a[i]! + w.learnedQueries[i]!;
      layerNormRows(a, w.numQueries, d, w.normWeight, w.normBias, ATTENTION_LN_EPS);
      x = a;
      n = w.numQueries;
    }
  }
  const out = new Float32Array(d);
  for (let r = 0; r < n; r++) for (let i = 0; i < d; i++) out[i]! += x[r * d + i]!;
  for (let i = 0; i < d; i++) out[i] = out[i]! / n;
  return out;
}
