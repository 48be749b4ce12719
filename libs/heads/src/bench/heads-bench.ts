/**
 * Per-call latency of every head kind at realistic sizes (D = 768, 300-slice volumes, k = 4 →
 * 64 tokens per slice), each printed with a baseline measured in the same run doing the same
 * multiply-adds as the head's dominant operations: a plain JS matrix multiply (i-k-j loops over
 * Float32Array) for the TypeScript paths, an onnxruntime MatMul for the ONNX attention paths.
 * Run after `npm run build`: `node libs/heads/dist/bench/heads-bench.js`.
 * Set HEADS_BENCH_FULL=1 to also time the TypeScript self+cross attention over 300 slices (minutes).
 */
import { EmbedEngine, encodeModel, ensureBenchBundle } from '@curia/model';
import { InferenceSession, Tensor } from 'onnxruntime-node';

import type { Weight } from '../head-model.js';
import { Head } from '../head.js';
import type { HeadMeta } from '../head-schema.js';
import type { HeadFeatures } from '../features.js';
import { Rng } from '../math/rng.js';
import { HeadGraph } from '../onnx/graph.js';

const D = 768;
const C = 4;
const rng = new Rng(1);
const rand = (n: number, scale = 0.05): Float32Array =>
  Float32Array.from({ length: n }, () => rng.normal() * scale);
const w = (shape: number[], scale = 0.05): Weight => ({
  shape,
  data: rand(
    shape.reduce((a, b) => a * b, 1),
    scale,
  ),
});

function matmul(a: Float32Array, b: Float32Array, out: Float32Array, m: number, k: number, n: number): void {
  out.fill(0);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p]!;
      const bo = p * n;
      const oo = i * n;
      for (let j = 0; j < n; j++) out[oo + j]! += av * b[bo + j]!;
    }
  }
}

/** Mean milliseconds per call over at least `minMs` (after one warm-up call). */
async function timeIt(fn: () => unknown, minMs = 400): Promise<number> {
  await fn();
  let calls = 0;
  const t0 = performance.now();
  let el = 0;
  do {
    await fn();
    calls++;
    el = performance.now() - t0;
  } while (el < minMs);
  return el / calls;
}

/** Baseline: time of plain matmuls [m×k]·[k×n] for each shape, summed. */
async function baseline(shapes: [number, number, number][]): Promise<number> {
  const bufs = shapes.map(([m, k, n]) => ({
    a: rand(m * k),
    b: rand(k * n),
    o: new Float32Array(m * n),
    m,
    k,
    n,
  }));
  return timeIt(() => {
    for (const x of bufs) matmul(x.a, x.b, x.o, x.m, x.k, x.n);
  });
}

function meta(
  kind: HeadMeta['kind'],
  extra: Partial<HeadMeta> & Pick<HeadMeta, 'requirements' | 'architecture'>,
): HeadMeta {
  return {
    schema_version: 1,
    name: `bench-${kind}`,
    version: '1',
    kind,
    task: kind === 'cox' ? 'survival' : 'classification',
    labels: kind === 'cox' ? ['risk'] : Array.from({ length: C }, (_, i) => `class_${i}`),
    backbone: null,
    provenance: { source: 'fit', created_at: new Date(0).toISOString() },
    ...extra,
  };
}

const vec = (slices: number, maskCounts = false): HeadFeatures => ({
  slices,
  hidden: D,
  blocks: [
    {
      data: rand(slices * D, 1),
      tokensPerSlice: 1,
      ...(maskCounts ? { maskCounts: new Float64Array(slices).fill(5) } : {}),
    },
  ],
});

const linearW = (outputs: number): Map<string, Weight> =>
  new Map([
    ['classifier.weight', w([outputs, D])],
    ['classifier.bias', w([outputs])],
  ]);

function attentionHead(blocks: ('self' | 'cross')[], queries: number): Head {
  const weights = linearW(C);
  for (const b of blocks) {
    const p = `attention_module.${b}_attention.attention`;
    weights.set(`${p}.multihead_attn.in_proj_weight`, w([3 * D, D], 0.02));
    weights.set(`${p}.multihead_attn.in_proj_bias`, w([3 * D]));
    weights.set(`${p}.multihead_attn.out_proj.weight`, w([D, D], 0.02));
    weights.set(`${p}.multihead_attn.out_proj.bias`, w([D]));
    weights.set(`${p}.norm.weight`, { shape: [D], data: new Float32Array(D).fill(1) });
    weights.set(`${p}.norm.bias`, w([D]));
  }
  if (blocks.includes('cross'))
    weights.set('attention_module.cross_attention.learned_queries', w([queries, D], 1));
  return new Head(
    meta('attention-3d', {
      requirements: {
        inputs: [{ kind: 'avg_pooled_tokens', k: 4, norm: 'pre' }],
        slices: 'all',
        mask: false,
        hidden: D,
      },
      architecture: {
        input_dim: D,
        outputs: C,
        attention: { num_heads: 12, num_queries: queries, blocks },
        slice_position_embedding: true,
      },
    }),
    weights,
  );
}

/**
 * Baseline for the ONNX paths: onnxruntime MatMuls [chunk, k]·[k, n] covering `m` rows (m·k·n
 * multiply-adds), the same kernel family and thread count as the head's graphs.
 */
async function ortBaseline(shapes: [number, number, number][]): Promise<number> {
  const runs: { s: InferenceSession; a: Tensor; times: number }[] = [];
  for (const [m, k, n] of shapes) {
    const g = new HeadGraph();
    g.op('MatMul', ['a', g.float('b', rand(k * n), [k, n])], {}, 'y');
    const s = await InferenceSession.create(
      encodeModel(g.model('baseline', [['a', ['m', k]]], [['y', ['m', n]]])),
      { executionProviders: ['cpu'], graphOptimizationLevel: 'all' },
    );
    const chunk = Math.min(m, 2048);
    runs.push({ s, a: new Tensor('float32', rand(chunk * k), [chunk, k]), times: Math.ceil(m / chunk) });
  }
  const t = await timeIt(async () => {
    for (const r of runs) for (let i = 0; i < r.times; i++) await r.s.run({ a: r.a });
  }, 1);
  for (const r of runs) await r.s.release();
  return t;
}

const rows: [string, number, number][] = [];
async function row(
  name: string,
  head: () => Promise<unknown>,
  base: [number, number, number][],
  minMs?: number,
  baselineOf: (shapes: [number, number, number][]) => Promise<number> = baseline,
): Promise<void> {
  const t = await timeIt(head, minMs);
  const b = await baselineOf(base);
  rows.push([name, t, b]);
  console.log(
    `${name.padEnd(52)} ${t.toFixed(3).padStart(10)} ms   baseline ${b.toFixed(3).padStart(10)} ms   ratio ${(t / b).toFixed(2)}`,
  );
}

async function main(): Promise<void> {
  console.log(`heads-bench: D=${D}, classes=${C}, node ${process.version}`);
  const cls = new Head(
    meta('cls-linear', {
      requirements: { inputs: [{ kind: 'cls', norm: 'post' }], slices: 'each', mask: false, hidden: D },
      architecture: { input_dim: D, outputs: C },
    }),
    linearW(C),
  );
  const f1 = vec(1);
  const f300 = vec(300);
  await row('cls-linear, 1 slice', () => cls.run(f1), [[1, D, C]]);
  await row('cls-linear, 300 slices (batch)', () => cls.run(f300), [[300, D, C]]);
  const mask = new Head(
    meta('mask-linear', {
      requirements: {
        inputs: [{ kind: 'mask_pooled', norm: 'post', weighting: 'mask' }],
        slices: 'each',
        mask: true,
        hidden: D,
      },
      architecture: { input_dim: D, outputs: C },
    }),
    linearW(C),
  );
  const fm = vec(1, true);
  await row('mask-linear, 1 slice', () => mask.run(fm), [[1, D, C]]);
  const mlpW = new Map<string, Weight>([
    ['mlp.0.weight', w([256, D])],
    ['mlp.0.bias', w([256])],
    ['mlp.1.weight', w([C, 256])],
    ['mlp.1.bias', w([C])],
  ]);
  const mlp = new Head(
    meta('mlp', {
      requirements: { inputs: [{ kind: 'cls', norm: 'post' }], slices: 'each', mask: false, hidden: D },
      architecture: { input_dim: D, outputs: C, mlp_sizes: [D, 256, C] },
    }),
    mlpW,
  );
  await row('mlp 768-256-4, 1 slice', () => mlp.run(f1), [
    [1, D, 256],
    [1, 256, C],
  ]);
  const nt = 500;
  const coxW = new Map<string, Weight>([
    ['cox.weight', w([1, D])],
    ['cox.bias', w([1])],
    ['cox.baseline_times', { shape: [nt], data: Float32Array.from({ length: nt }, (_, i) => i + 1) }],
    [
      'cox.baseline_cumhaz',
      { shape: [nt], data: Float32Array.from({ length: nt }, (_, i) => (i + 1) * 0.01) },
    ],
  ]);
  const cox = new Head(
    meta('cox', {
      requirements: { inputs: [{ kind: 'cls', norm: 'post' }], slices: 'each', mask: false, hidden: D },
      architecture: { input_dim: D, outputs: 1 },
    }),
    coxW,
  );
  await row(`cox + ${nt}-point survival curve, 1 slice`, () => cox.run(f1), [[1, D, 1]]);
  const vol = new Head(
    meta('volume-mean-linear', {
      requirements: {
        inputs: [{ kind: 'avg_pooled_tokens', k: 32, norm: 'pre' }],
        slices: 'all',
        mask: false,
        hidden: D,
      },
      architecture: { input_dim: D, outputs: C },
    }),
    linearW(C),
  );
  await row('volume-mean-linear, 300 slices', () => vol.run(f300), [
    [1, 300, D],
    [1, D, C],
  ]);

  const tok = (slices: number): HeadFeatures => ({
    slices,
    hidden: D,
    blocks: [{ data: rand(slices * 64 * D, 1), tokensPerSlice: 64 }],
  });
  const cross = attentionHead(['cross'], 2);
  const L300 = 300 * 64;
  const f300t = tok(300);
  // Folded cross block: scores and weighted sums of L tokens for queries × heads (2·L·D·QH MACs).
  const crossShapes: [number, number, number][] = [
    [L300, D, 2 * 12],
    [2 * 12, L300, D],
  ];
  await row(
    '[js]   attention-3d cross only, 300 slices × 64 tok',
    () => cross.run(f300t, { backend: 'js' }),
    crossShapes,
    1,
  );
  let t0 = performance.now();
  await cross.prepare();
  console.log(
    `[onnx] attention-3d cross only: graph build + session load ${(performance.now() - t0).toFixed(0)} ms`,
  );
  await row(
    '[onnx] attention-3d cross only, 300 slices × 64 tok',
    () => cross.run(f300t),
    crossShapes,
    200,
    ortBaseline,
  );
  await cross.release();
  const full = attentionHead(['self', 'cross'], 2);
  t0 = performance.now();
  await full.prepare();
  console.log(
    `[onnx] attention-3d self+cross: graph build + session load ${(performance.now() - t0).toFixed(0)} ms`,
  );
  // Self-attention scores and weighted sums dominate: 2·L²·D MACs (projections add 4·L·D²).
  const onnxSelf = (L: number): [number, number, number][] => [
    [2 * L, D, L],
    [4 * L, D, D],
  ];
  for (const s of [30, 100, 300]) {
    const f = tok(s);
    await row(
      `[onnx] attention-3d self+cross, ${s} slices × 64 tok`,
      () => full.run(f),
      onnxSelf(s * 64),
      1,
      ortBaseline,
    );
  }
  // "Negligible next to embedding": the same 300 slices through a curia-b-sized backbone (D = 768,
  // 12 layers, random weights) on this machine, at its measured per-slice time.
  const attn300 = rows[rows.length - 1]![1];
  const backbone = await EmbedEngine.open(await ensureBenchBundle('curia-b'));
  try {
    const px = new Float32Array(2 * backbone.pixelsPerSlice).map(() => rng.normal());
    const outputs = ['last_block_prenorm'] as const;
    await backbone.run(px, 2, { outputs });
    const te = performance.now();
    await backbone.run(px, 2, { outputs });
    const perSlice = (performance.now() - te) / 2;
    console.log(
      `[onnx] attention-3d self+cross over 300 slices next to embedding them: curia-b backbone ${perSlice.toFixed(0)} ms/slice ` +
        `(measured, batch 2) → ${((300 * perSlice) / 1000).toFixed(1)} s for 300 slices; the head adds ` +
        `${((100 * attn300) / (300 * perSlice)).toFixed(1)}%`,
    );
  } finally {
    await backbone.close();
  }
  const s30 = 30;
  const L30 = s30 * 64;
  const selfShapes = (L: number): [number, number, number][] => [
    [L, D, 3 * D],
    [L, D, L],
    [L, L, D],
    [L, D, D],
    [L, D, 2 * D],
    [2, D, L],
    [2, L, D],
  ];
  const f30 = tok(s30);
  await row(
    `[js]   attention-3d self+cross, ${s30} slices × 64 tok`,
    () => full.run(f30, { backend: 'js' }),
    selfShapes(L30),
    1,
  );
  const last = rows[rows.length - 1]!;
  const macs = (L: number): number => selfShapes(L).reduce((s, [m, k, n]) => s + m * k * n, 0);
  const scale = macs(L300) / macs(L30);
  console.log(
    `[js]   attention-3d self+cross, 300 slices × 64 tok: estimated ${((last[1] * scale) / 1000).toFixed(1)} s (×${scale.toFixed(1)} MACs of the 30-slice run; O(L²·D) self-attention)`,
  );
  if (process.env.HEADS_BENCH_FULL === '1') {
    await row(
      '[js]   attention-3d self+cross, 300 slices × 64 tok',
      () => full.run(f300t, { backend: 'js' }),
      selfShapes(L300),
      1,
    );
  }
  await full.release();
}

await main();
