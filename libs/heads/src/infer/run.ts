import { CuriaError } from '@curia/errors';

import { invalid } from '../errors.js';
import type { HeadFeatures } from '../features.js';
import type { HeadModel } from '../head-model.js';
import type { AttentionModuleWeights, MhaWeights } from '../math/attention.js';
import { linear } from '../math/dense.js';
import { slicePositionalEmbedding } from '../math/positional.js';
import { coxOutput } from './cox.js';
import { mlpForward } from './mlp.js';
import { taskOutput, type HeadOutput } from './outputs.js';
import { selectSlices } from './slices.js';

export type { HeadOutput } from './outputs.js';

function checkFeatures(head: HeadModel, f: HeadFeatures): void {
  const req = head.meta.requirements;
  if (f.hidden !== req.hidden) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `head '${head.meta.name}' expects hidden size ${req.hidden}, features have ${f.hidden}`,
    );
  }
  if (f.blocks.length !== req.inputs.length) {
    throw invalid(
      `head '${head.meta.name}' needs ${req.inputs.length} feature inputs, got ${f.blocks.length}`,
    );
  }
  if (!Number.isInteger(f.slices) || f.slices < 1)
    throw invalid(`features must cover at least one slice (got ${f.slices})`);
  f.blocks.forEach((b, i) => {
    const want = f.slices * b.tokensPerSlice * f.hidden;
    if (b.data.length !== want) {
      throw invalid(
        `feature input ${i} (${req.inputs[i]!.kind}) has ${b.data.length} values, expected ${want}`,
      );
    }
  });
}

/** Per-slice row vectors for vector heads: blocks (one token each) concatenated. */
function rowVectors(head: HeadModel, f: HeadFeatures): Float32Array {
  const req = head.meta.requirements;
  const width = f.blocks.length * f.hidden;
  if (width !== head.meta.architecture.input_dim) {
    throw invalid(
      `head '${head.meta.name}' takes ${head.meta.architecture.input_dim} features per row, inputs give ${width}`,
    );
  }
  const out = new Float32Array(f.slices * width);
  f.blocks.forEach((b, bi) => {
    if (b.tokensPerSlice !== 1)
      throw invalid(`feature input ${bi} must have one token per slice for a ${head.meta.kind} head`);
    if (req.inputs[bi]!.kind === 'mask_pooled') {
      const counts = b.maskCounts;
      for (let s = 0; s < f.slices; s++) {
        if (!counts || !(counts[s]! > 0)) {
          throw invalid(
            `mask of slice ${s} is empty on the token grid (max-pooled to patch size); the head needs a non-empty mask`,
          );
        }
      }
    }
    for (let s = 0; s < f.slices; s++)
      out.set(b.data.subarray(s * f.hidden, (s + 1) * f.hidden), s * width + bi * f.hidden);
  });
  return out;
}

function mhaWeights(head: HeadModel, block: 'self' | 'cross'): MhaWeights {
  const p = `attention_module.${block}_attention.attention`;
  return {
    inProjWeight: head.weight(`${p}.multihead_attn.in_proj_weight`).data,
    inProjBias: head.weight(`${p}.multihead_attn.in_proj_bias`).data,
    outProjWeight: head.weight(`${p}.multihead_attn.out_proj.weight`).data,
    outProjBias: head.weight(`${p}.multihead_attn.out_proj.bias`).data,
    normWeight: head.weight(`${p}.norm.weight`).data,
    normBias: head.weight(`${p}.norm.bias`).data,
  };
}

/** The attention module weights of an attention-3d head. */
export function attentionWeightsOf(head: HeadModel): AttentionModuleWeights {
  const at = head.meta.architecture.attention;
  if (!at) throw new CuriaError('INTERNAL', `head '${head.meta.name}' has no attention configuration`);
  const blocks = at.blocks;
  return {
    dim: head.meta.requirements.hidden,
    numHeads: at.num_heads,
    blocks,
    ...(blocks.includes('self') ? { self: mhaWeights(head, 'self') } : {}),
    ...(blocks.includes('cross')
      ? {
          cross: {
            ...mhaWeights(head, 'cross'),
            learnedQueries: head.weight('attention_module.cross_attention.learned_queries').data,
            numQueries: at.num_queries,
          },
        }
      : {}),
  };
}

/** Builds the volume token sequence [selected slices × tokens per slice, hidden] (+ slice positions). */
function volumeTokens(
  head: HeadModel,
  f: HeadFeatures,
  picked: readonly number[],
): { x: Float32Array; rows: number } {
  const d = f.hidden;
  const perSlice = f.blocks.reduce((s, b) => s + b.tokensPerSlice, 0);
  const rows = picked.length * perSlice;
  const x = new Float32Array(rows * d);
  const pe = head.meta.architecture.slice_position_embedding
    ? slicePositionalEmbedding(picked.length, d)
    : null;
  let r = 0;
  picked.forEach((s, p) => {
    for (const b of f.blocks) {
      const t = b.tokensPerSlice;
      x.set(b.data.subarray(s * t * d, (s + 1) * t * d), r * d);
      if (pe) {
        for (let k = 0; k < t; k++) {
          const o = (r + k) * d;
          for (let i = 0; i < d; i++) x[o + i] = x[o + i]! + pe[p * d + i]!;
        }
      }
      r += t;
    }
  });
  return { x, rows };
}

function classify(head: HeadModel, x: Float32Array, rows: number): HeadOutput {
  const a = head.meta.architecture;
  const logits = linear(
    x,
    rows,
    a.input_dim,
    head.weight('classifier.weight').data,
    head.weight('classifier.bias').data,
    a.outputs,
  );
  return taskOutput(head.meta.task, logits, rows, a.outputs);
}

/** How {@link runHeadOn} runs (see `HeadRunOptions`). */
export interface RunSettings {
  readonly signal?: AbortSignal;
  readonly maxAttentionTokens: number;
  /** Attention-3d heads: the attention module, tokens [rows, hidden] → pooled [hidden]. */
  readonly attention: (tokens: Float32Array, rows: number, signal?: AbortSignal) => Promise<Float32Array>;
}

/** Runs any head kind on features (see `Head.run`). */
export async function runHeadOn(
  head: HeadModel,
  f: HeadFeatures,
  settings: RunSettings,
): Promise<HeadOutput> {
  const { signal } = settings;
  checkFeatures(head, f);
  const req = head.meta.requirements;
  switch (head.meta.kind) {
    case 'cls-linear':
    case 'mask-linear':
      return classify(head, rowVectors(head, f), f.slices);
    case 'mlp':
      return mlpForward(head, rowVectors(head, f), f.slices);
    case 'cox':
      return coxOutput(head, rowVectors(head, f), f.slices);
    case 'attention-3d': {
      const picked = selectSlices(req, f);
      const perSlice = f.blocks.reduce((n, b) => n + b.tokensPerSlice, 0);
      if (picked.length * perSlice > settings.maxAttentionTokens) {
        throw new CuriaError(
          'RESOURCE_EXHAUSTED',
          `head '${head.meta.name}' would attend over ${picked.length} slices × ${perSlice} tokens = ${picked.length * perSlice} tokens, above the limit of ${settings.maxAttentionTokens}`,
        );
      }
      const { x, rows } = volumeTokens(head, f, picked);
      return classify(head, await settings.attention(x, rows, signal), 1);
    }
    case 'volume-mean-linear': {
      const picked = selectSlices(req, f);
      const b = f.blocks[0]!;
      if (f.blocks.length !== 1 || b.tokensPerSlice !== 1)
        throw invalid('volume-mean-linear takes one pooled token per slice');
      const d = f.hidden;
      const acc = new Float64Array(d);
      let wsum = 0;
      for (const s of picked) {
        // Curia averages every token of every slice: weight each slice mean by its token count.
        const w = req.mask ? b.maskCounts![s]! : 1;
        wsum += w;
        for (let i = 0; i < d; i++) acc[i]! += w * b.data[s * d + i]!;
      }
      return classify(
        head,
        Float32Array.from(acc, (v) => v / wsum),
        1,
      );
    }
  }
}
