import { describe, expect, it } from 'vitest';

import {
  attentionModuleForward,
  foldedCrossAttention,
  multiHeadAttention,
  type MhaWeights,
} from './attention.js';
import { solveSpd } from './cholesky.js';
import { slicePositionalEmbedding } from './positional.js';
import { Rng } from './rng.js';

function randomMha(d: number, rng: Rng): MhaWeights {
  const r = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal() * 0.3);
  return {
    inProjWeight: r(3 * d * d),
    inProjBias: r(3 * d),
    outProjWeight: r(d * d),
    outProjBias: r(d),
    normWeight: Float32Array.from({ length: d }, () => 1 + rng.normal() * 0.1),
    normBias: r(d),
  };
}

describe('slice positional embedding', () => {
  it('is sin on even and cos on odd channels of p·10000^(−2j/d)', () => {
    const d = 8;
    const pe = slicePositionalEmbedding(4, d);
    for (let p = 0; p < 4; p++) {
      for (let j = 0; j < d / 2; j++) {
        const f = Math.pow(10000, (-2 * j) / d);
        expect(pe[p * d + 2 * j]).toBeCloseTo(Math.sin(p * f), 6);
        expect(pe[p * d + 2 * j + 1]).toBeCloseTo(Math.cos(p * f), 6);
      }
    }
    expect(pe[0]).toBe(0);
    expect(pe[1]).toBe(1);
  });
});

describe('multi-head attention', () => {
  it('with a single key returns out_proj(v_proj(key)) for every query (softmax = 1)', async () => {
    const d = 6;
    const rng = new Rng(1);
    const w = randomMha(d, rng);
    const key = Float32Array.from({ length: d }, () => rng.normal());
    const q = Float32Array.from({ length: 3 * d }, () => rng.normal());
    const out = await multiHeadAttention(
      { q, lq: 3, kv: key, lk: 1, dim: d, numHeads: 2, w, keyValid: Uint8Array.of(1) },
      'cross',
    );
    // Manual: v = Wv·key + bv; o = Wo·v + bo.
    const v = new Float64Array(d);
    for (let i = 0; i < d; i++) {
      let s = w.inProjBias[2 * d + i]!;
      for (let j = 0; j < d; j++) s += w.inProjWeight[(2 * d + i) * d + j]! * key[j]!;
      v[i] = s;
    }
    for (let i = 0; i < d; i++) {
      let s = w.outProjBias[i]!;
      for (let j = 0; j < d; j++) s += w.outProjWeight[i * d + j]! * v[j]!;
      for (let r = 0; r < 3; r++) expect(out[r * d + i]).toBeCloseTo(s, 5);
    }
  });

  it('ignores all-zero padding rows in cross-attention, as Curia masks them', async () => {
    const d = 4;
    const rng = new Rng(2);
    const self = randomMha(d, rng);
    const cross = {
      ...randomMha(d, rng),
      learnedQueries: Float32Array.from({ length: 2 * d }, () => rng.normal()),
      numQueries: 2,
    };
    const tokens = Float32Array.from({ length: 3 * d }, () => rng.normal());
    const padded = new Float32Array(5 * d);
    padded.set(tokens);
    const m = { dim: d, numHeads: 1, blocks: ['cross'] as const, cross };
    const a = await attentionModuleForward(tokens, 3, m);
    const b = await attentionModuleForward(padded, 5, m);
    for (let i = 0; i < d; i++) expect(b[i]).toBeCloseTo(a[i]!, 6);
    // Self-attention keeps valid tokens blind to padding too, so their outputs are unchanged.
    const ms = { dim: d, numHeads: 2, blocks: ['self'] as const, self };
    const selfCall = { dim: d, numHeads: 2, w: self };
    const sa = await multiHeadAttention(
      { ...selfCall, q: tokens, lq: 3, kv: tokens, lk: 3, keyValid: Uint8Array.of(1, 1, 1) },
      'self',
    );
    const sb = await multiHeadAttention(
      { ...selfCall, q: padded, lq: 5, kv: padded, lk: 5, keyValid: Uint8Array.of(1, 1, 1, 0, 0) },
      'self',
    );
    for (let i = 0; i < 3 * d; i++) expect(sb[i]).toBeCloseTo(sa[i]!, 6);
    await expect(attentionModuleForward(new Float32Array(2 * d), 2, m)).rejects.toThrow(
      /no non-padding token/,
    );
    expect((await attentionModuleForward(tokens, 3, ms)).length).toBe(d);
  });
});

describe('self-attention', () => {
  it('matches a naive per-head softmax(QKᵀ/√d)V computation', async () => {
    const d = 8;
    const heads = 2;
    const dh = d / heads;
    const n = 9;
    const rng = new Rng(6);
    const w = randomMha(d, rng);
    const x = Float32Array.from({ length: n * d }, () => rng.normal());
    const proj = (row: number, part: number, o: number): number => {
      let s = w.inProjBias[part * d + o]!;
      for (let c = 0; c < d; c++) s += w.inProjWeight[(part * d + o) * d + c]! * x[row * d + c]!;
      return s;
    };
    const got = await multiHeadAttention(
      { q: x, lq: n, kv: x, lk: n, dim: d, numHeads: heads, w, keyValid: new Uint8Array(n).fill(1) },
      'self',
    );
    for (let i = 0; i < n; i++) {
      const ctx = new Float64Array(d);
      for (let h = 0; h < heads; h++) {
        const logits = Array.from({ length: n }, (_, j) => {
          let s = 0;
          for (let t = 0; t < dh; t++) s += proj(i, 0, h * dh + t) * proj(j, 1, h * dh + t);
          return s / Math.sqrt(dh);
        });
        const m = Math.max(...logits);
        const p = logits.map((l) => Math.exp(l - m));
        const z = p.reduce((a, b) => a + b, 0);
        for (let t = 0; t < dh; t++)
          ctx[h * dh + t] = p.reduce((s, pj, j) => s + (pj / z) * proj(j, 2, h * dh + t), 0);
      }
      for (let o = 0; o < d; o++) {
        let s = w.outProjBias[o]!;
        for (let c = 0; c < d; c++) s += w.outProjWeight[o * d + c]! * ctx[c]!;
        expect(got[i * d + o]).toBeCloseTo(s, 5);
      }
    }
  });
});

describe('folded cross-attention', () => {
  it('equals the projected computation, padding included', async () => {
    const d = 12;
    const rng = new Rng(3);
    const w = randomMha(d, rng);
    const q = Float32Array.from({ length: 2 * d }, () => rng.normal());
    const kv = Float32Array.from({ length: 9 * d }, () => rng.normal());
    const valid = Uint8Array.of(1, 1, 0, 1, 1, 1, 1, 0, 1);
    for (const heads of [1, 3]) {
      const call = { q, lq: 2, kv, lk: 9, dim: d, numHeads: heads, w, keyValid: valid };
      const a = await multiHeadAttention(call, 'cross');
      const b = await foldedCrossAttention(call);
      for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i]!, 5);
    }
  });
});

describe('SPD solve', () => {
  it('solves a small system exactly', () => {
    const a = Float64Array.of(4, 2, 0, 2, 5, 1, 0, 1, 3);
    const x = solveSpd(a, 3, Float64Array.of(2, 3, 4))!;
    for (let i = 0; i < 3; i++) {
      const s = a[i * 3]! * x[0]! + a[i * 3 + 1]! * x[1]! + a[i * 3 + 2]! * x[2]!;
      expect(s).toBeCloseTo([2, 3, 4][i]!, 10);
    }
  });
});
