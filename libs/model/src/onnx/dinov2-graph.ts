import { CuriaError } from '@curia/errors';

import {
  gridSize,
  mlpHidden,
  numPatches,
  swigluHidden,
  validateArchitecture,
  type Architecture,
  type DinoWeights,
} from '../architecture.js';
import { GraphBuilder, onnxFloatType, valueInfo, type ComputeDType } from './graph-builder.js';
import type { ModelParts } from './model-writer.js';

/** ONNX opset of the generated graphs (17 = first with LayerNormalization). */
export const DINOV2_OPSET = 17;

/** Name of the graph's input, (B, C, S, S) preprocessed slices. */
export const GRAPH_INPUT = 'pixel_values';
/** Graph outputs, in declaration order. */
export const GRAPH_OUTPUTS = ['last_hidden_state', 'pooler_output', 'last_block_prenorm'] as const;
/** One of {@link GRAPH_OUTPUTS}. */
export type GraphOutputName = (typeof GRAPH_OUTPUTS)[number];

/** How self-attention is expressed in the graph. */
export type AttentionImpl = 'standard' | 'mha';

/**
 * Default attention implementation. ORT's optimiser does not fuse the standard attention
 * subgraph of a ViT (it only folds the score scale into a FusedMatMul), while its contrib
 * MultiHeadAttention kernel cut CPU time per slice by 5–26% in interleaved A/B and benchmark runs
 * of the demo bundle (batch 1 and 8, 1 and 2 threads) at unchanged parity (~2e-6 vs the 1e-4 budget).
 */
export const DEFAULT_ATTENTION: AttentionImpl = 'mha';

/** Options of {@link buildDinov2Graph}. */
export interface Dinov2GraphOptions {
  /** Weight and compute precision (default f32). */
  readonly dtype?: ComputeDType;
  /** Input/output precision (default f32; with dtype f16 the graph casts at its edges). */
  readonly ioDtype?: ComputeDType;
  /** Graph name recorded in the model. */
  readonly name?: string;
  /**
   * Attention implementation: 'mha' (default, {@link DEFAULT_ATTENTION}) = ORT's contrib
   * `com.microsoft.MultiHeadAttention` (CPU and CUDA kernels); 'standard' = plain
   * MatMul/Softmax ops that any ONNX runtime accepts.
   */
  readonly attention?: AttentionImpl;
  /** Producer version recorded in the model. */
  readonly producerVersion?: string;
  /**
   * Weight quantization of the ViT's linear layers (attention q/k/v/output, MLP fc1/fc2, SwiGLU
   * in/out); absent = float weights. See {@link quantizeLinearWeight} and {@link Int8LinearOps}.
   * Needs dtype f32.
   */
  readonly quantize?: 'int8';
  /** Ops of a quantized linear layer (default {@link DEFAULT_INT8_OPS}). */
  readonly int8Ops?: Int8LinearOps;
}

/**
 * How a dynamically quantized linear layer is expressed:
 * - 'dynamic-quantize-matmul': ORT's contrib `com.microsoft.DynamicQuantizeMatMul` (quantizes the
 *   activations per tensor to uint8, int8 × uint8 product, per-column scale, bias) — one node;
 * - 'matmul-integer': standard ops — DynamicQuantizeLinear → MatMulInteger (per-column weight
 *   zero point 0) → Cast → Mul by x_scale × w_scale → Add bias, which any ONNX runtime runs.
 */
export type Int8LinearOps = 'dynamic-quantize-matmul' | 'matmul-integer';

/**
 * Default ops of a quantized linear layer: the standard-ops form, which ORT fuses into its
 * MatMulIntegerToFloat kernel, cost the same or less CPU than the contrib DynamicQuantizeMatMul at
 * identical fidelity on the 2-core AVX-512 VNNI dev box (interleaved, CPU ms per slice, F32 /
 * DynamicQuantizeMatMul / MatMulInteger): demo batch 1 89 / 67 / 63, batch 8 105 / 68 / 71;
 * curia-b batch 1 2620 / 1155 / 1077. It also runs on any ONNX runtime.
 */
export const DEFAULT_INT8_OPS: Int8LinearOps = 'matmul-integer';

/** A linear layer's weight quantized per output channel, laid out as a MatMul right operand. */
export interface QuantizedLinearWeight {
  /** [in, out] row-major int8 values in [−127, 127]. */
  readonly q: Int8Array;
  /** Per-output-channel scale: w ≈ q · scale[out]. */
  readonly scale: Float32Array;
}

/**
 * Symmetric per-output-channel INT8 quantization of an HF Linear weight W [out, in]: scale[o] =
 * max|W[o, :]| / 127 (1 for an all-zero row), q = round(W / scale) — returned transposed to
 * [in, out] for MatMul.
 */
export function quantizeLinearWeight(w: Float32Array, rows: number, cols: number): QuantizedLinearWeight {
  const q = new Int8Array(rows * cols);
  const scale = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let max = 0;
    for (let c = 0; c < cols; c++) max = Math.max(max, Math.abs(w[r * cols + c]!));
    const s = max > 0 ? max / 127 : 1;
    scale[r] = s;
    for (let c = 0; c < cols; c++) {
      q[c * rows + r] = Math.max(-127, Math.min(127, Math.round(w[r * cols + c]! / s)));
    }
  }
  return { q, scale };
}

function weight(weights: DinoWeights, name: string): Float32Array {
  const w = weights.get(name);
  if (!w) throw new CuriaError('FAILED_PRECONDITION', `backbone weights lack tensor '${name}'`);
  return w;
}

/** Row-major [rows, cols] → [cols, rows] (HF Linear [out, in] → MatMul right operand [in, out]). */
function transpose2d(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[base + c]!;
  }
  return out;
}

/** Slice of rows [from, to) of a row-major [rows, cols] matrix. */
function rowSlice(src: Float32Array, cols: number, from: number, to: number): Float32Array {
  return src.subarray(from * cols, to * cols);
}

/**
 * Builds the ONNX graph of an HF `Dinov2Model` / `Dinov2WithRegistersModel` forward pass at the
 * native resolution (no position-embedding interpolation), with a dynamic batch dimension.
 *
 * Input `pixel_values` (B, C, S, S). Outputs `last_hidden_state` (B, T, D) after the final
 * LayerNorm, `pooler_output` (B, D) = its CLS row, and `last_block_prenorm` (B, T, D), the last
 * block's output before the final LayerNorm. Tokens are ordered CLS, registers, patches.
 *
 * Besides self-attention (see {@link Dinov2GraphOptions.attention}) only standard ai.onnx operators
 * are used; ORT's optimiser fuses the exact-GELU and MatMul+Add patterns itself.
 */
export function buildDinov2Graph(
  arch: Architecture,
  weights: DinoWeights,
  opts: Dinov2GraphOptions = {},
): ModelParts {
  validateArchitecture(arch);
  const dtype = opts.dtype ?? 'f32';
  const attention = opts.attention ?? DEFAULT_ATTENTION;
  const ioDtype = opts.ioDtype ?? 'f32';
  const g = new GraphBuilder(dtype);
  const d = arch.hidden_size;
  const heads = arch.num_heads;
  const dh = d / heads;
  const n = numPatches(arch);
  const p = arch.patch_size;
  const w = (name: string): Float32Array => weight(weights, name);

  let x: string = GRAPH_INPUT;
  if (dtype !== ioDtype) x = g.op('Cast', [x], { to: { i: onnxFloatType(dtype) } }, 'cast_in');

  // Patch embedding: Conv (kernel = stride = patch) → (B, D, g, g) → (B, N, D).
  const convW = g.floatInit('patch_w', w('embeddings.patch_embeddings.projection.weight'), [
    d,
    arch.num_channels,
    p,
    p,
  ]);
  const convB = g.floatInit('patch_b', w('embeddings.patch_embeddings.projection.bias'), [d]);
  const conv = g.op(
    'Conv',
    [x, convW, convB],
    { kernel_shape: { ints: [p, p] }, strides: { ints: [p, p] } },
    'patch_conv',
  );
  const flat = g.op('Reshape', [conv, g.int64Init('shape_bdn', [0, d, -1])], undefined, 'patch_flatten');
  const patches = g.op('Transpose', [flat], { perm: { ints: [0, 2, 1] } }, 'patch_tokens');

  // Position embeddings are added to CLS and patches before registers are inserted (HF order).
  const pos = w('embeddings.position_embeddings');
  const cls = w('embeddings.cls_token');
  const clsPos = new Float32Array(d);
  for (let c = 0; c < d; c++) clsPos[c] = Math.fround(cls[c]! + pos[c]!);
  const patchPos = g.floatInit('patch_pos', pos.subarray(d, (n + 1) * d), [1, n, d]);
  const patchesPos = g.op('Add', [patches, patchPos], undefined, 'patch_add_pos');

  const shape = g.op('Shape', [patchesPos], undefined, 'tokens_shape');
  const batch = g.op(
    'Slice',
    [shape, g.int64Init('zero1', [0]), g.int64Init('one1', [1]), g.int64Init('axis0', [0])],
    undefined,
    'batch_dim',
  );
  const expandTo = (name: string, init: string, rows: number): string => {
    const target = g.op(
      'Concat',
      [batch, g.int64Init(`${name}_dims`, [rows, d])],
      { axis: { i: 0 } },
      `${name}_shape`,
    );
    return g.op('Expand', [init, target], undefined, `${name}_expand`);
  };
  const parts = [expandTo('cls', g.floatInit('cls_pos', clsPos, [1, 1, d]), 1)];
  if (arch.num_register_tokens > 0) {
    const r = arch.num_register_tokens;
    parts.push(
      expandTo('registers', g.floatInit('register_tokens', w('embeddings.register_tokens'), [1, r, d]), r),
    );
  }
  parts.push(patchesPos);
  let h = g.op('Concat', parts, { axis: { i: 1 } }, 'embeddings');

  const standard = attention === 'standard';
  const headsShape = standard ? g.int64Init('shape_heads', [0, 0, heads, dh]) : '';
  const mergeShape = standard ? g.int64Init('shape_merge', [0, 0, d]) : '';
  const scale = standard ? g.scalar('attn_scale', 1 / Math.sqrt(dh)) : '';
  const mlp = arch.ffn === 'mlp';
  const half = mlp ? g.scalar('half', 0.5) : '';
  const one = mlp ? g.scalar('one', 1) : '';
  const sqrt2 = mlp ? g.scalar('sqrt2', Math.SQRT2) : '';

  const quantize = opts.quantize === 'int8';
  const int8Ops = opts.int8Ops ?? DEFAULT_INT8_OPS;
  if (quantize && dtype !== 'f32') {
    throw new CuriaError('INVALID_ARGUMENT', 'int8 quantization needs dtype f32 (float parts stay F32)');
  }
  const int8Zeros = new Map<number, string>();
  /** Per-column zero points (all 0: symmetric weights), one initializer per width. */
  const zeroPoints = (rows: number): string => {
    let z = int8Zeros.get(rows);
    if (!z) int8Zeros.set(rows, (z = g.int8Init(`w_zero_${rows}`, new Int8Array(rows), [rows])));
    return z;
  };
  /** y ≈ x · Wᵀ + b with W quantized per output channel and x quantized per call (see {@link Int8LinearOps}). */
  const quantizedLinear = (
    inp: string,
    qw: QuantizedLinearWeight,
    bias: Float32Array | null,
    rows: number,
    cols: number,
    tag: string,
  ): string => {
    const wq = g.int8Init(`${tag}_wq`, qw.q, [cols, rows]);
    const ws = g.floatInit(`${tag}_wscale`, qw.scale, [rows]);
    const b = bias ? g.floatInit(`${tag}_b`, bias, [rows]) : '';
    if (int8Ops === 'dynamic-quantize-matmul') {
      return g.node('DynamicQuantizeMatMul', [inp, wq, ws, zeroPoints(rows), ...(b ? [b] : [])], {
        name: `${tag}_dqmatmul`,
        domain: 'com.microsoft',
      })[0]!;
    }
    const [xq, xs, xz] = g.node('DynamicQuantizeLinear', [inp], { nOut: 3, name: `${tag}_xquant` });
    const acc = g.op('MatMulInteger', [xq!, wq, xz!, zeroPoints(rows)], undefined, `${tag}_matmulint`);
    const f = g.op('Cast', [acc], { to: { i: onnxFloatType('f32') } }, `${tag}_tofloat`);
    const scale = g.op('Mul', [xs!, ws], undefined, `${tag}_scale`);
    const y = g.op('Mul', [f, scale], undefined, `${tag}_dequant`);
    return b ? g.op('Add', [y, b], undefined, `${tag}_bias`) : y;
  };

  /** y = x · Wᵀ + b for an HF Linear weight W [rows = out, cols = in]. */
  const linearOf = (
    inp: string,
    weightRows: Float32Array,
    bias: Float32Array | null,
    rows: number,
    cols: number,
    tag: string,
  ): string => {
    if (quantize)
      return quantizedLinear(inp, quantizeLinearWeight(weightRows, rows, cols), bias, rows, cols, tag);
    const wt = g.floatInit(`${tag}_w`, transpose2d(weightRows, rows, cols), [cols, rows]);
    const mm = g.op('MatMul', [inp, wt], undefined, `${tag}_matmul`);
    return bias ? g.op('Add', [mm, g.floatInit(`${tag}_b`, bias, [rows])], undefined, `${tag}_bias`) : mm;
  };
  const linear = (
    inp: string,
    wName: string,
    bName: string | null,
    rows: number,
    cols: number,
    tag: string,
  ): string => linearOf(inp, w(wName), bName ? w(bName) : null, rows, cols, tag);
  const layerNorm = (inp: string, prefix: string, tag: string, out?: string): string => {
    const ins = [
      inp,
      g.floatInit(`${tag}_gamma`, w(`${prefix}.weight`), [d]),
      g.floatInit(`${tag}_beta`, w(`${prefix}.bias`), [d]),
    ];
    const attrs = { axis: { i: -1 }, epsilon: { f: arch.layer_norm_eps } };
    if (out) return g.node('LayerNormalization', ins, { outputs: [out], attrs, name: tag })[0]!;
    return g.op('LayerNormalization', ins, attrs, tag);
  };

  for (let i = 0; i < arch.num_layers; i++) {
    const l = `encoder.layer.${i}`;
    const t = `l${i}`;
    const ln1 = layerNorm(h, `${l}.norm1`, `${t}_ln1`);
    const project = (which: 'query' | 'key' | 'value'): string => {
      const bias = arch.qkv_bias ? `${l}.attention.attention.${which}.bias` : null;
      return linear(ln1, `${l}.attention.attention.${which}.weight`, bias, d, d, `${t}_${which}`);
    };
    let merged: string;
    if (attention === 'mha') {
      // com.microsoft.MultiHeadAttention: (B, T, D) q/k/v in, (B, T, D) out; scale 1/√dh by default.
      merged = g.node('MultiHeadAttention', [project('query'), project('key'), project('value')], {
        attrs: { num_heads: { i: heads } },
        name: `${t}_mha`,
        domain: 'com.microsoft',
      })[0]!;
    } else {
      const heads4d = (which: 'query' | 'key' | 'value', perm: number[]): string => {
        const split = g.op('Reshape', [project(which), headsShape], undefined, `${t}_${which}_heads`);
        return g.op('Transpose', [split], { perm: { ints: perm } }, `${t}_${which}_t`);
      };
      const q = heads4d('query', [0, 2, 1, 3]);
      const kT = heads4d('key', [0, 2, 3, 1]);
      const v = heads4d('value', [0, 2, 1, 3]);
      // HF scales the scores after QKᵀ (not the queries); kept for bit-level fidelity.
      const scores = g.op(
        'Mul',
        [g.op('MatMul', [q, kT], undefined, `${t}_qk`), scale],
        undefined,
        `${t}_scale`,
      );
      const probs = g.op('Softmax', [scores], { axis: { i: -1 } }, `${t}_softmax`);
      const ctx = g.op('MatMul', [probs, v], undefined, `${t}_pv`);
      const ctxT = g.op('Transpose', [ctx], { perm: { ints: [0, 2, 1, 3] } }, `${t}_ctx_t`);
      merged = g.op('Reshape', [ctxT, mergeShape], undefined, `${t}_ctx`);
    }
    const attnOut = linear(
      merged,
      `${l}.attention.output.dense.weight`,
      `${l}.attention.output.dense.bias`,
      d,
      d,
      `${t}_out`,
    );
    const ls1 = g.op(
      'Mul',
      [attnOut, g.floatInit(`${t}_ls1`, w(`${l}.layer_scale1.lambda1`), [d])],
      undefined,
      `${t}_ls1`,
    );
    h = g.op('Add', [h, ls1], undefined, `${t}_res1`);

    const ln2 = layerNorm(h, `${l}.norm2`, `${t}_ln2`);
    let ffn: string;
    if (mlp) {
      const hid = mlpHidden(arch);
      const fc1 = linear(ln2, `${l}.mlp.fc1.weight`, `${l}.mlp.fc1.bias`, hid, d, `${t}_fc1`);
      // Exact GELU: x · 0.5 · (1 + erf(x / √2)), the pattern ORT fuses into its Gelu kernel.
      const erf = g.op(
        'Erf',
        [g.op('Div', [fc1, sqrt2], undefined, `${t}_gelu_div`)],
        undefined,
        `${t}_gelu_erf`,
      );
      const act = g.op(
        'Mul',
        [
          g.op('Mul', [fc1, g.op('Add', [erf, one], undefined, `${t}_gelu_add`)], undefined, `${t}_gelu_mul`),
          half,
        ],
        undefined,
        `${t}_gelu`,
      );
      ffn = linear(act, `${l}.mlp.fc2.weight`, `${l}.mlp.fc2.bias`, d, hid, `${t}_fc2`);
    } else {
      const hid = swigluHidden(arch);
      const win = w(`${l}.mlp.weights_in.weight`);
      const bin = w(`${l}.mlp.weights_in.bias`);
      // weights_in's output is chunked into (x1, x2): two MatMuls on its row halves avoid a Split.
      const x1 = linearOf(ln2, rowSlice(win, d, 0, hid), bin.subarray(0, hid), hid, d, `${t}_swiglu_x1`);
      const x2 = linearOf(ln2, rowSlice(win, d, hid, 2 * hid), bin.subarray(hid), hid, d, `${t}_swiglu_x2`);
      const silu = g.op(
        'Mul',
        [x1, g.op('Sigmoid', [x1], undefined, `${t}_sigmoid`)],
        undefined,
        `${t}_silu`,
      );
      const gated = g.op('Mul', [silu, x2], undefined, `${t}_gate`);
      ffn = linear(gated, `${l}.mlp.weights_out.weight`, `${l}.mlp.weights_out.bias`, d, hid, `${t}_wout`);
    }
    const ls2 = g.op(
      'Mul',
      [ffn, g.floatInit(`${t}_ls2`, w(`${l}.layer_scale2.lambda1`), [d])],
      undefined,
      `${t}_ls2`,
    );
    const last = i === arch.num_layers - 1;
    const resOut = last && dtype === ioDtype ? ['last_block_prenorm'] : undefined;
    h = g.node('Add', [h, ls2], { outputs: resOut, name: `${t}_res2` })[0]!;
  }

  const ioType = onnxFloatType(ioDtype);
  const toIo = (value: string, out: string): void => {
    if (dtype === ioDtype) g.node('Identity', [value], { outputs: [out], name: `${out}_identity` });
    else g.node('Cast', [value], { outputs: [out], attrs: { to: { i: ioType } }, name: `${out}_cast` });
  };
  if (dtype !== ioDtype) toIo(h, 'last_block_prenorm');
  const normed = layerNorm(h, 'layernorm', 'final_ln', dtype === ioDtype ? 'last_hidden_state' : undefined);
  if (dtype !== ioDtype) toIo(normed, 'last_hidden_state');
  g.node('Gather', ['last_hidden_state', g.int64Init('cls_index', [0], [])], {
    outputs: ['pooler_output'],
    attrs: { axis: { i: 1 } },
    name: 'pooler',
  });

  const tokens = 1 + arch.num_register_tokens + n;
  const side = gridSize(arch) * p;
  const graph = {
    name: opts.name ?? 'dinov2',
    node: g.nodes,
    input: [valueInfo(GRAPH_INPUT, ioType, ['batch', arch.num_channels, side, side])],
    output: [
      valueInfo('last_hidden_state', ioType, ['batch', tokens, d]),
      valueInfo('pooler_output', ioType, ['batch', d]),
      valueInfo('last_block_prenorm', ioType, ['batch', tokens, d]),
    ],
  };
  return {
    model: {
      irVersion: 8,
      opsetImport: [
        { domain: '', version: DINOV2_OPSET },
        ...(attention === 'mha' || (quantize && int8Ops === 'dynamic-quantize-matmul')
          ? [{ domain: 'com.microsoft', version: 1 }]
          : []),
      ],
      producerName: '@curia/model',
      producerVersion: opts.producerVersion ?? '0',
      graph: null,
    },
    graph,
    initializers: g.initializers,
  };
}
