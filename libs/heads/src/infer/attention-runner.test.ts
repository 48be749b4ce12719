import { afterEach, describe, expect, it } from 'vitest';

import { Head, validateHeadWeights } from '../head.js';
import { attentionModuleForward, type AttentionModuleWeights, type MhaWeights } from '../math/attention.js';
import { Rng } from '../math/rng.js';
import { OnnxAttentionModule, paddingRow } from './attention-runner.js';

const rng = new Rng(7);
const rand = (n: number, scale: number): Float32Array =>
  Float32Array.from({ length: n }, () => rng.normal() * scale);

function mha(d: number): MhaWeights {
  return {
    inProjWeight: rand(3 * d * d, 0.2),
    inProjBias: rand(3 * d, 0.1),
    outProjWeight: rand(d * d, 0.2),
    outProjBias: rand(d, 0.1),
    normWeight: Float32Array.from({ length: d }, () => 1 + 0.1 * rng.normal()),
    normBias: rand(d, 0.1),
  };
}

function weights(
  d: number,
  numHeads: number,
  blocks: readonly ('self' | 'cross')[],
  numQueries = 3,
): AttentionModuleWeights {
  return {
    dim: d,
    numHeads,
    blocks,
    self: mha(d),
    cross: { ...mha(d), learnedQueries: rand(numQueries * d, 1), numQueries },
  };
}

/** Tokens [rows, d] with the listed rows all-zero (Curia's padding). */
function tokens(rows: number, d: number, padding: readonly number[] = []): Float32Array {
  const x = rand(rows * d, 1);
  for (const r of padding) x.fill(0, r * d, (r + 1) * d);
  return x;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('OnnxAttentionModule (ONNX graphs in onnxruntime) vs the TypeScript reference', () => {
  const open: OnnxAttentionModule[] = [];
  const create = async (
    ...args: Parameters<typeof OnnxAttentionModule.create>
  ): Promise<OnnxAttentionModule> => {
    const m = await OnnxAttentionModule.create(...args);
    open.push(m);
    return m;
  };
  afterEach(async () => {
    for (const m of open.splice(0)) await m.release();
  });

  const cases: [string, readonly ('self' | 'cross')[], number, number, number, number[]][] = [
    // name, blocks, dim, heads, rows, padding rows
    ['self+cross, 4 heads', ['self', 'cross'], 32, 4, 150, []],
    ['self+cross with padding rows', ['self', 'cross'], 32, 4, 150, [0, 1, 77, 149]],
    ['cross only with padding (keys dropped)', ['cross'], 24, 2, 90, [5, 6, 7]],
    ['self only', ['self'], 16, 1, 40, [3]],
    ['cross then self (self over the queries)', ['cross', 'self'], 16, 2, 60, []],
    ['self over padding only, then cross', ['self', 'cross'], 16, 4, 12, [...Array(12).keys()]],
  ];
  for (const [name, blocks, d, h, rows, pad] of cases) {
    it(`${name}: pooled output within 1e-5`, async () => {
      const w = weights(d, h, blocks);
      const x = tokens(rows, d, pad);
      const ref = await attentionModuleForward(x, rows, w);
      // Small chunks exercise the chunked query path (several ORT runs per self block).
      for (const selfAttention of ['mha', 'standard'] as const) {
        const m = await create(w, { intraOpThreads: 1, chunkRows: 64, selfAttention });
        const got = await m.forward(x, rows);
        expect(maxAbsDiff(got, ref)).toBeLessThanOrEqual(1e-5);
        // Deterministic across calls on the cached sessions.
        expect(maxAbsDiff(await m.forward(x, rows), got)).toBe(0);
      }
    });
  }

  it('padding rows of a self block become LayerNorm(W_o·b_v + b_o), as Curia computes them', async () => {
    const d = 16;
    const w = weights(d, 2, ['self']);
    const pad = paddingRow(w.self!, d);
    // With every row padding, the module's mean is that row itself.
    const m = await create(w, { intraOpThreads: 1 });
    const got = await m.forward(new Float32Array(5 * d), 5);
    expect(maxAbsDiff(got, pad)).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(got, await attentionModuleForward(new Float32Array(5 * d), 5, w))).toBeLessThanOrEqual(
      1e-6,
    );
  });

  it('a cross block over padding only is INVALID_ARGUMENT, like the reference', async () => {
    const d = 8;
    const w = weights(d, 1, ['cross']);
    const m = await create(w, { intraOpThreads: 1 });
    await expect(m.forward(new Float32Array(4 * d), 4)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(attentionModuleForward(new Float32Array(4 * d), 4, w)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
  });

  it('stops with CANCELLED between chunks when the signal fires', async () => {
    const d = 32;
    const w = weights(d, 4, ['self', 'cross']);
    const m = await create(w, { intraOpThreads: 1, chunkRows: 16 });
    const ac = new AbortController();
    // forward() has passed its entry check and awaits the key/value run when the signal fires.
    const run = m.forward(tokens(200, d), 200, ac.signal);
    ac.abort();
    await expect(run).rejects.toMatchObject({ code: 'CANCELLED' });
  });

  it('rejects a non-positive chunk size', async () => {
    await expect(OnnxAttentionModule.create(weights(8, 1, ['self']), { chunkRows: 0 })).rejects.toMatchObject(
      {
        code: 'INVALID_ARGUMENT',
      },
    );
  });
});

describe('Head.run on an attention-3d head', () => {
  it('caps the attention tokens with RESOURCE_EXHAUSTED and agrees across backends', async () => {
    const d = 8;
    const w = weights(d, 2, ['self', 'cross'], 2);
    const named = new Map<string, { shape: number[]; data: Float32Array }>([
      ['classifier.weight', { shape: [2, d], data: rand(2 * d, 0.3) }],
      ['classifier.bias', { shape: [2], data: rand(2, 0.1) }],
      ['attention_module.cross_attention.learned_queries', { shape: [2, d], data: w.cross!.learnedQueries }],
    ]);
    for (const b of ['self', 'cross'] as const) {
      const m = w[b]!;
      const p = `attention_module.${b}_attention.attention`;
      named.set(`${p}.multihead_attn.in_proj_weight`, { shape: [3 * d, d], data: m.inProjWeight });
      named.set(`${p}.multihead_attn.in_proj_bias`, { shape: [3 * d], data: m.inProjBias });
      named.set(`${p}.multihead_attn.out_proj.weight`, { shape: [d, d], data: m.outProjWeight });
      named.set(`${p}.multihead_attn.out_proj.bias`, { shape: [d], data: m.outProjBias });
      named.set(`${p}.norm.weight`, { shape: [d], data: m.normWeight });
      named.set(`${p}.norm.bias`, { shape: [d], data: m.normBias });
    }
    const head = new Head(
      {
        schema_version: 1,
        name: 'tiny-attn',
        version: '1',
        kind: 'attention-3d',
        task: 'classification',
        labels: ['a', 'b'],
        requirements: {
          inputs: [{ kind: 'avg_pooled_tokens', k: 8, norm: 'pre' }],
          slices: 'all',
          mask: false,
          hidden: d,
        },
        architecture: {
          input_dim: d,
          outputs: 2,
          attention: { num_heads: 2, num_queries: 2, blocks: ['self', 'cross'] },
          slice_position_embedding: true,
        },
        backbone: null,
        provenance: { source: 'fit', created_at: new Date(0).toISOString() },
      },
      named,
    );
    validateHeadWeights(head);
    await head.prepare({ intraOpThreads: 1 });
    const f = { slices: 5, hidden: d, blocks: [{ data: rand(5 * 16 * d, 1), tokensPerSlice: 16 }] };
    const onnx = await head.run(f, { maxAttentionTokens: 80 });
    const js = await head.run(f, { backend: 'js' });
    expect(maxAbsDiff(onnx.logits, js.logits)).toBeLessThanOrEqual(1e-5);
    await expect(head.run(f, { maxAttentionTokens: 79 })).rejects.toMatchObject({
      code: 'RESOURCE_EXHAUSTED',
      message: expect.stringMatching(/5 slices × 16 tokens = 80 tokens, above the limit of 79/) as unknown,
    });
    await head.release();
    // Released sessions are rebuilt on the next call.
    expect(maxAbsDiff((await head.run(f)).logits, onnx.logits)).toBe(0);
    await head.release();
  });
});
