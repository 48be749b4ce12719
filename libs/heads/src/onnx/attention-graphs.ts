import type { ModelParts } from '@curia/model';

import { ATTENTION_LN_EPS, type MhaWeights } from '../math/attention.js';
import { HeadGraph, transpose2d, type Dims } from './graph.js';

/*
 * ONNX graphs of Curia's attention blocks (torch `nn.MultiheadAttention` + residual + LayerNorm).
 * Padding is not expressed in the graphs: the runner feeds only non-padding rows, which is exactly
 * Curia's masking (valid tokens attend to valid tokens only; see attention-runner.ts).
 */

/**
 * How the self-attention scores are computed: `mha` = ORT's contrib MultiHeadAttention (its CPU
 * kernel tiles the scores, flash-attention style); `standard` = batched MatMul / Softmax / MatMul
 * over a chunk of query rows (materialises [heads, chunk, L] scores).
 */
export type SelfAttentionImpl = 'mha' | 'standard';

/** Input/output names of the graphs. */
export const ATTN_IO = {
  tokens: 'tokens',
  queries: 'queries',
  keys: 'keys',
  values: 'values',
  out: 'out',
} as const;

/** `out` = LayerNorm(residual + out_proj(ctx)): the output of a Curia attention block. */
function outputBlock(g: HeadGraph, ctx: string, residual: string, w: MhaWeights, dim: number): void {
  const o = g.op('Add', [
    g.op('MatMul', [ctx, g.float('w_o', transpose2d(w.outProjWeight, dim, dim), [dim, dim])]),
    g.float('b_o', w.outProjBias, [dim]),
  ]);
  g.op(
    'LayerNormalization',
    [
      g.op('Add', [o, residual]),
      g.float('ln_gamma', w.normWeight, [dim]),
      g.float('ln_beta', w.normBias, [dim]),
    ],
    { axis: { i: -1 }, epsilon: { f: ATTENTION_LN_EPS } },
    ATTN_IO.out,
  );
}

/** A self-attention block whose graphs are built: its weights, width, heads and kernel. */
export interface SelfAttentionSpec {
  readonly w: MhaWeights;
  readonly dim: number;
  readonly numHeads: number;
  readonly impl: SelfAttentionImpl;
}

/** Rows `[from, from + n)` of a torch Linear weight, as a MatMul right operand [in, n]. */
function projection(w: Float32Array, dim: number, from: number, n: number): Float32Array {
  return transpose2d(w.subarray(from * dim, (from + n) * dim), n, dim);
}

/**
 * Self-attention, key/value side: `tokens` [1, L, D] → `keys`, `values` [1, L, D] (projected,
 * with bias). Computed once per volume; queries are then attended in chunks.
 */
export function selfKeyValueGraph({ w, dim, numHeads, impl }: SelfAttentionSpec): ModelParts {
  const g = new HeadGraph();
  const dh = dim / numHeads;
  const wkv = g.float('w_kv', projection(w.inProjWeight, dim, dim, 2 * dim), [dim, 2 * dim]);
  const kv = g.op('Add', [
    g.op('MatMul', [ATTN_IO.tokens, wkv]),
    g.float('b_kv', w.inProjBias.subarray(dim, 3 * dim), [2 * dim]),
  ]);
  const [k, v] = g.ops('Split', [kv, g.int64('split', [dim, dim])], 2, { axis: { i: -1 } });
  if (impl === 'mha') {
    g.op('Identity', [k!], {}, ATTN_IO.keys);
    g.op('Identity', [v!], {}, ATTN_IO.values);
  } else {
    // Head-major layouts for batched MatMuls: keys [H, dh, L] (already transposed), values [H, L, dh].
    const heads = g.int64('l_h_dh', [-1, numHeads, dh]);
    g.op('Transpose', [g.op('Reshape', [k!, heads])], { perm: { ints: [1, 2, 0] } }, ATTN_IO.keys);
    g.op('Transpose', [g.op('Reshape', [v!, heads])], { perm: { ints: [1, 0, 2] } }, ATTN_IO.values);
  }
  const [keys, values] = keyValueShapes(dim, numHeads, impl);
  return g.model(
    'curia_self_attention_kv',
    [[ATTN_IO.tokens, [1, 'L', dim]]],
    [
      [ATTN_IO.keys, keys],
      [ATTN_IO.values, values],
    ],
  );
}

/** Shapes of the keys and values the key/value graph hands to the query graph. */
function keyValueShapes(dim: number, numHeads: number, impl: SelfAttentionImpl): [Dims, Dims] {
  const dh = dim / numHeads;
  return impl === 'mha'
    ? [
        [1, 'L', dim],
        [1, 'L', dim],
      ]
    : [
        [numHeads, dh, 'L'],
        [numHeads, 'L', dh],
      ];
}

/**
 * Self-attention, query side for a chunk of rows: `queries` [1, C, D] (the chunk's input
 * tokens), `keys`/`values` [1, L, D] → `out` [1, C, D] = LayerNorm(x + out_proj(MHA(q, k, v))).
 * Uses ORT's contrib MultiHeadAttention, whose CPU kernel tiles the scores (flash attention)
 * instead of materialising [heads, C, L].
 */
export function selfQueryGraph({ w, dim, numHeads, impl }: SelfAttentionSpec): ModelParts {
  const g = new HeadGraph();
  const dh = dim / numHeads;
  const standard = impl === 'standard';
  // The standard path folds torch's 1/√dh score scale into the query projection.
  const scale = standard ? 1 / Math.sqrt(dh) : 1;
  const wq = projection(w.inProjWeight, dim, 0, dim).map((v) => v * scale);
  const bq = w.inProjBias.slice(0, dim).map((v) => v * scale);
  const q = g.op('Add', [
    g.op('MatMul', [ATTN_IO.queries, g.float('w_q', wq, [dim, dim])]),
    g.float('b_q', bq, [dim]),
  ]);
  let ctx: string;
  if (standard) {
    const qh = g.op('Transpose', [g.op('Reshape', [q, g.int64('c_h_dh', [-1, numHeads, dh])])], {
      perm: { ints: [1, 0, 2] },
    });
    const probs = g.op('Softmax', [g.op('MatMul', [qh, ATTN_IO.keys])], { axis: { i: -1 } });
    const ch = g.op('MatMul', [probs, ATTN_IO.values]);
    ctx = g.op('Reshape', [
      g.op('Transpose', [ch], { perm: { ints: [1, 0, 2] } }),
      g.int64('one_c_d', [1, -1, dim]),
    ]);
  } else {
    ctx = g.op('MultiHeadAttention', [q, ATTN_IO.keys, ATTN_IO.values], { num_heads: { i: numHeads } });
  }
  outputBlock(g, ctx, ATTN_IO.queries, w, dim);
  const [keys, values] = keyValueShapes(dim, numHeads, impl);
  return g.model(
    'curia_self_attention_q',
    [
      [ATTN_IO.queries, [1, 'C', dim]],
      [ATTN_IO.keys, keys],
      [ATTN_IO.values, values],
    ],
    [[ATTN_IO.out, [1, 'C', dim]]],
  );
}

/**
 * Cross-attention of the learned queries over `tokens` [L, D] → `out` [Q, D], with the key and
 * value projections folded into the (constant) queries: qₕ·(W_k x + b_k)ₕ = (W_kₕᵀ qₕ)·x + qₕ·b_kₕ
 * and Σⱼ pⱼ (W_v xⱼ + b_v)ₕ = W_vₕ (Σⱼ pⱼ xⱼ) + b_vₕ. Costs O(Q·H·L·D) instead of O(L·D²).
 */
export function crossGraph(
  w: MhaWeights,
  learnedQueries: Float32Array,
  numQueries: number,
  dim: number,
  numHeads: number,
): ModelParts {
  const g = new HeadGraph();
  const dh = dim / numHeads;
  const scale = 1 / Math.sqrt(dh);
  const nq = numQueries * numHeads;
  const wi = w.inProjWeight;
  const bi = w.inProjBias;
  // Query projection and folding in float64, rounded once.
  const qTilde = new Float64Array(nq * dim);
  const cst = new Float32Array(nq);
  for (let i = 0; i < numQueries; i++) {
    for (let h = 0; h < numHeads; h++) {
      const row = (i * numHeads + h) * dim;
      let c0 = 0;
      for (let t = 0; t < dh; t++) {
        const o = h * dh + t;
        let qv = bi[o]!;
        for (let c = 0; c < dim; c++) qv += learnedQueries[i * dim + c]! * wi[o * dim + c]!;
        qv *= scale;
        c0 += qv * bi[dim + o]!;
        const ko = (dim + o) * dim;
        for (let c = 0; c < dim; c++) qTilde[row + c]! += qv * wi[ko + c]!;
      }
      cst[i * numHeads + h] = c0;
    }
  }
  // W_v per head as MatMul right operands: [H, D, dh], wv[h, c, t] = W_v[h·dh + t, c].
  const wv = new Float32Array(numHeads * dim * dh);
  for (let h = 0; h < numHeads; h++)
    for (let t = 0; t < dh; t++)
      for (let c = 0; c < dim; c++) wv[(h * dim + c) * dh + t] = wi[(2 * dim + h * dh + t) * dim + c]!;

  const scores = g.op(
    'Gemm',
    [
      ATTN_IO.tokens,
      g.float('q_tilde', Float32Array.from(qTilde), [nq, dim]),
      g.float('q_cst', cst, [1, nq]),
    ],
    { transB: { i: 1 } },
  );
  // Softmax over tokens: scores are [L, Q·H]; transpose so the reduced axis is the last one.
  const probs = g.op('Softmax', [g.op('Transpose', [scores], { perm: { ints: [1, 0] } })], {
    axis: { i: -1 },
  });
  const xbar = g.op('MatMul', [probs, ATTN_IO.tokens]);
  const perHead = g.op('Transpose', [g.op('Reshape', [xbar, g.int64('qhd', [numQueries, numHeads, dim])])], {
    perm: { ints: [1, 0, 2] },
  });
  const ctxH = g.op('MatMul', [perHead, g.float('w_v', wv, [numHeads, dim, dh])]);
  const ctx = g.op('Add', [
    g.op('Reshape', [
      g.op('Transpose', [ctxH], { perm: { ints: [1, 0, 2] } }),
      g.int64('qd', [numQueries, dim]),
    ]),
    g.float('b_v', bi.subarray(2 * dim, 3 * dim), [dim]),
  ]);
  outputBlock(g, ctx, g.float('learned_queries', learnedQueries, [numQueries, dim]), w, dim);
  return g.model('curia_cross_attention', [[ATTN_IO.tokens, ['L', dim]]], [[ATTN_IO.out, [numQueries, dim]]]);
}
