import { CuriaError } from '@curia/errors';
import type { RunResult } from '@curia/model';

import { invalid } from './errors.js';

/** Which token stream a feature is computed from: after (`post`) or before (`pre`) the final LayerNorm. */
export type TokenNorm = 'post' | 'pre';

/** One per-slice feature a head needs from Embed. */
export type FeatureSpec =
  /** The CLS token row. */
  | { readonly kind: 'cls'; readonly norm: TokenNorm }
  /**
   * Patch tokens averaged under the slice mask max-pooled to the token grid. `mask` weights each
   * token by its pooled mask value (Curia 2D); `binary` takes a plain mean over tokens whose pooled
   * mask is non-zero (Curia 3D). Comes with the token count under the mask per slice.
   */
  | { readonly kind: 'mask_pooled'; readonly norm: TokenNorm; readonly weighting: 'mask' | 'binary' }
  /**
   * Patch tokens average-pooled k×k on the token grid: (grid/k)² tokens per slice, row-major.
   * k = 0 is the global mean over all patch tokens (one token per slice, as the wire's
   * `AvgPooledTokensFeature.kernel_size = 0` and Curia's per-slice average pooling).
   */
  | { readonly kind: 'avg_pooled_tokens'; readonly k: number; readonly norm: TokenNorm };

/**
 * Which slices a head consumes: `each` = independent 2D predictions per slice; `all` = the whole
 * volume as one input; `{ central: N }` = the volume's N central slices (around the middle of the
 * non-empty mask slices when a mask is given), selected by the head from the full volume.
 */
export type SliceSelection = 'each' | 'all' | { readonly central: number };

/** Exactly what a head needs from Embed, so full patch tokens never travel. */
export interface FeatureRequirement {
  /** Per-slice features, in the order the head consumes them. */
  readonly inputs: readonly FeatureSpec[];
  readonly slices: SliceSelection;
  /** Whether a segmentation mask must accompany the pixels. */
  readonly mask: boolean;
  /** Backbone hidden size the features must have. */
  readonly hidden: number;
}

/** One computed feature: `slices × tokensPerSlice × hidden`, row-major. */
export interface FeatureBlock {
  readonly data: Float32Array;
  readonly tokensPerSlice: number;
  /** For `mask_pooled`: number of grid cells under the pooled mask, per slice (0 = empty). */
  readonly maskCounts?: Float64Array;
}

/** Features for one head call; `blocks[i]` answers `requirements().inputs[i]`. */
export interface HeadFeatures {
  readonly slices: number;
  readonly hidden: number;
  readonly blocks: readonly FeatureBlock[];
}

/**
 * Full token tensors of one Embed call, as `@curia/model`'s EmbedEngine returns them:
 * `lastHiddenState` [batch, tokens, hidden] after the final LayerNorm, `lastBlockPrenorm` the last
 * block's output before it.
 */
export type TokenSource = RunResult;

function stream(src: TokenSource, norm: TokenNorm): Float32Array {
  const t = norm === 'post' ? src.lastHiddenState : src.lastBlockPrenorm;
  if (!t) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `features need ${norm === 'post' ? 'last_hidden_state' : 'last_block_prenorm'} but Embed did not return it`,
    );
  }
  if (t.length !== src.batch * src.tokens * src.hidden) {
    throw invalid(
      `token tensor has ${t.length} values, expected batch×tokens×hidden = ${src.batch * src.tokens * src.hidden}`,
    );
  }
  return t;
}

function gridOf(src: TokenSource): number {
  const patches = src.tokens - 1 - src.numRegisterTokens;
  const g = Math.round(Math.sqrt(patches));
  if (g * g !== patches) throw invalid(`${patches} patch tokens do not form a square grid`);
  return g;
}

/** CLS rows: [batch, hidden]. */
export function clsFeatures(src: TokenSource, norm: TokenNorm): FeatureBlock {
  const t = stream(src, norm);
  const { batch, tokens, hidden } = src;
  const out = new Float32Array(batch * hidden);
  for (let b = 0; b < batch; b++)
    out.set(t.subarray(b * tokens * hidden, b * tokens * hidden + hidden), b * hidden);
  return { data: out, tokensPerSlice: 1 };
}

/**
 * Patch tokens average-pooled k×k (torch `avg_pool2d`, stride k, remainder dropped):
 * [batch, (grid/k)², hidden] in row-major pooled-grid order. `kernelSize` 0 = global mean
 * ([batch, 1, hidden], the same as k = grid).
 */
export function avgPooledTokens(src: TokenSource, norm: TokenNorm, kernelSize: number): FeatureBlock {
  const t = stream(src, norm);
  const { batch, tokens, hidden } = src;
  const g = gridOf(src);
  if (!Number.isInteger(kernelSize) || kernelSize < 0 || kernelSize > g)
    throw invalid(`kernel_size ${kernelSize} must be an integer in [0, ${g}] (0 = global mean)`);
  const k = kernelSize === 0 ? g : kernelSize;
  const pg = Math.floor(g / k);
  const per = pg * pg;
  const out = new Float32Array(batch * per * hidden);
  const acc = new Float64Array(hidden);
  const inv = 1 / (k * k);
  const p0 = 1 + src.numRegisterTokens;
  for (let b = 0; b < batch; b++) {
    const base = b * tokens * hidden;
    for (let pr = 0; pr < pg; pr++) {
      for (let pc = 0; pc < pg; pc++) {
        acc.fill(0);
        for (let r = pr * k; r < pr * k + k; r++) {
          for (let c = pc * k; c < pc * k + k; c++) {
            const o = base + (p0 + r * g + c) * hidden;
            for (let i = 0; i < hidden; i++) acc[i]! += t[o + i]!;
          }
        }
        const oo = (b * per + pr * pg + pc) * hidden;
        for (let i = 0; i < hidden; i++) out[oo + i] = acc[i]! * inv;
      }
    }
  }
  return { data: out, tokensPerSlice: per };
}

/**
 * Max-pools masks [batch, height, width] to the grid×grid token grid (kernel = height/grid), as
 * Curia's `max_pool2d(mask, kernel_size=H // grid)`. Returns [batch, grid²].
 */
export function maxPoolMask(
  mask: Float32Array,
  batch: number,
  height: number,
  width: number,
  grid: number,
): Float32Array {
  if (mask.length !== batch * height * width) {
    throw invalid(`mask has ${mask.length} values, expected ${batch}×${height}×${width}`);
  }
  const k = Math.floor(height / grid);
  if (k < 1 || Math.floor(width / grid) !== k)
    throw invalid(`mask ${height}×${width} cannot be pooled to a ${grid}×${grid} grid`);
  const out = new Float32Array(batch * grid * grid).fill(-Infinity);
  for (let b = 0; b < batch; b++) {
    const mo = b * height * width;
    const oo = b * grid * grid;
    for (let y = 0; y < grid * k; y++) {
      const row = mo + y * width;
      const orow = oo + Math.floor(y / k) * grid;
      for (let x = 0; x < grid * k; x++) {
        const v = mask[row + x]!;
        const cell = orow + Math.floor(x / k);
        if (v > out[cell]!) out[cell] = v;
      }
    }
  }
  return out;
}

/**
 * Mean of patch tokens under each slice's pooled mask: [batch, hidden] plus the number of grid
 * cells under the mask. Slices with an empty mask get a zero row and count 0 (heads decide).
 */
export function maskPooledFeatures(
  src: TokenSource,
  norm: TokenNorm,
  weighting: 'mask' | 'binary',
  mask: Float32Array,
  height: number,
  width: number,
): FeatureBlock {
  const t = stream(src, norm);
  const { batch, tokens, hidden } = src;
  const g = gridOf(src);
  const pooled = maxPoolMask(mask, batch, height, width, g);
  const out = new Float32Array(batch * hidden);
  const counts = new Float64Array(batch);
  const acc = new Float64Array(hidden);
  const p0 = 1 + src.numRegisterTokens;
  for (let b = 0; b < batch; b++) {
    acc.fill(0);
    let wsum = 0;
    let n = 0;
    for (let p = 0; p < g * g; p++) {
      const m = pooled[b * g * g + p]!;
      if (m === 0) continue;
      const w = weighting === 'mask' ? m : 1;
      n++;
      wsum += w;
      const o = (b * tokens + p0 + p) * hidden;
      for (let i = 0; i < hidden; i++) acc[i]! += w * t[o + i]!;
    }
    counts[b] = n;
    if (n > 0) for (let i = 0; i < hidden; i++) out[b * hidden + i] = acc[i]! / wsum;
  }
  return { data: out, tokensPerSlice: 1, maskCounts: counts };
}

/**
 * Reference helper: computes every feature a requirement lists from full token tensors
 * (`mask`, when required, is [batch, height, width]).
 */
export function computeHeadFeatures(
  req: FeatureRequirement,
  src: TokenSource,
  mask?: { data: Float32Array; height: number; width: number },
): HeadFeatures {
  if (src.hidden !== req.hidden) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `head expects hidden size ${req.hidden}, backbone produced ${src.hidden}`,
    );
  }
  if (req.mask && !mask) throw invalid('this head requires a mask (field mask) alongside pixel_values');
  const blocks = req.inputs.map((spec): FeatureBlock => {
    switch (spec.kind) {
      case 'cls':
        return clsFeatures(src, spec.norm);
      case 'avg_pooled_tokens':
        return avgPooledTokens(src, spec.norm, spec.k);
      case 'mask_pooled':
        if (!mask) throw invalid('mask_pooled features need a mask');
        return maskPooledFeatures(src, spec.norm, spec.weighting, mask.data, mask.height, mask.width);
    }
  });
  return { slices: src.batch, hidden: src.hidden, blocks };
}

/** Embed outputs (`@curia/model` names) needed to compute a requirement's features. */
export function embedOutputsFor(req: FeatureRequirement): ('last_hidden_state' | 'last_block_prenorm')[] {
  const out = new Set<'last_hidden_state' | 'last_block_prenorm'>();
  for (const i of req.inputs) out.add(i.norm === 'post' ? 'last_hidden_state' : 'last_block_prenorm');
  return [...out];
}

/** Concatenates features computed over consecutive slice chunks (same requirement) along slices. */
export function concatFeatures(parts: readonly HeadFeatures[]): HeadFeatures {
  const first = parts[0];
  if (!first) throw invalid('no feature chunks to concatenate');
  if (parts.length === 1) return first;
  const slices = parts.reduce((s, p) => s + p.slices, 0);
  const blocks = first.blocks.map((b0, bi): FeatureBlock => {
    const data = new Float32Array(slices * b0.tokensPerSlice * first.hidden);
    const counts = b0.maskCounts ? new Float64Array(slices) : undefined;
    let off = 0;
    let s0 = 0;
    for (const p of parts) {
      const b = p.blocks[bi]!;
      data.set(b.data, off);
      off += b.data.length;
      if (counts && b.maskCounts) counts.set(b.maskCounts, s0);
      s0 += p.slices;
    }
    return counts
      ? { data, tokensPerSlice: b0.tokensPerSlice, maskCounts: counts }
      : { data, tokensPerSlice: b0.tokensPerSlice };
  });
  return { slices, hidden: first.hidden, blocks };
}
