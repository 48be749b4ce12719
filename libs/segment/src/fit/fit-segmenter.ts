import { CuriaError } from '@curia/errors';
import { principalDirections } from '@curia/tensors';

import type { ClassTable } from '../classes.js';
import type { ModelGrid } from '../grid.js';
import { tokenGridSize } from '../grid.js';
import { TokenSampler } from '../sample.js';
import { kernelSize, segmenterScores, type SegmenterKind, type SegmenterWeights } from '../segmenter.js';
import { tokenFractions } from '../token-targets.js';
import { fitSoftLogistic } from './soft-logistic.js';

/** One labelled canonical slice: its patch tokens and its labels. */
export interface LabelledSlice {
  /** G·G × D patch tokens (token-major, row-major grid). */
  readonly tokens: Float32Array;
  /** rows × cols label values of the canonical slice (row-major). */
  readonly labels: ArrayLike<number>;
  readonly rows: number;
  readonly cols: number;
}

/** Options of {@link fitSegmenter}. */
export interface FitSegmenterOptions {
  readonly kind: SegmenterKind;
  readonly table: ClassTable;
  readonly model: ModelGrid;
  /** Token width D. */
  readonly dim: number;
  /** L2 penalty on standardised weights (default 1e-3). */
  readonly l2?: number;
  /** Cross-validation folds over the slices (default min(5, slices)); 1 = no cross-validation. */
  readonly folds?: number;
  /** L-BFGS iterations (default 200). */
  readonly maxIterations?: number;
  /** conv3x3: tokens are projected on their top principal directions first (default 64). */
  readonly convChannels?: number;
  readonly signal?: AbortSignal | undefined;
}

/** Default fit settings (also the contract's documented defaults). */
export const SEGMENT_FIT_DEFAULTS = { l2: 1e-3, maxIterations: 200, maxFolds: 5, convChannels: 64 } as const;

/** A fitted head and its cross-validation. */
export interface FitSegmenterResult {
  readonly head: SegmenterWeights;
  /** Mean held-out Dice per foreground class name (classes absent from every held-out fold are left out). */
  readonly cvDice: ReadonlyMap<string, number>;
  readonly folds: number;
  readonly tokens: number;
}

/** Features of a set of slices under one projection: N × F rows. */
interface Design {
  readonly x: Float32Array;
  readonly features: number;
}

/** How tokens become features (fitted on the training slices only). */
interface Featuriser {
  readonly center: Float32Array;
  /** conv3x3: D × P directions (column c at [c·D, (c+1)·D)); undefined for linear. */
  readonly directions?: Float64Array;
  readonly channels: number;
  design(slices: readonly LabelledSlice[], grid: number): Design;
}

function featuriser(
  kind: SegmenterKind,
  train: readonly LabelledSlice[],
  dim: number,
  channels: number,
): Featuriser {
  const n = train.reduce((s, t) => s + t.tokens.length / dim, 0);
  const center = new Float32Array(dim);
  const sums = new Float64Array(dim);
  for (const s of train) for (let i = 0; i < s.tokens.length; i++) sums[i % dim]! += s.tokens[i]!;
  for (let j = 0; j < dim; j++) center[j] = sums[j]! / n;
  if (kind === 'linear') {
    return {
      center,
      channels: dim,
      design: (slices) => {
        const x = new Float32Array(slices.reduce((s, t) => s + t.tokens.length, 0));
        let o = 0;
        for (const s of slices)
          for (let i = 0; i < s.tokens.length; i++) x[o++] = s.tokens[i]! - center[i % dim]!;
        return { x, features: dim };
      },
    };
  }
  const p = Math.min(channels, dim);
  const centred = new Float32Array(n * dim);
  let o = 0;
  for (const s of train)
    for (let i = 0; i < s.tokens.length; i++) centred[o++] = s.tokens[i]! - center[i % dim]!;
  const directions = principalDirections(centred, n, dim, p);
  return {
    center,
    directions,
    channels: p,
    design: (slices, g) => {
      const f = 9 * p;
      const x = new Float32Array(slices.length * g * g * f);
      const proj = new Float32Array(g * g * p);
      slices.forEach((s, si) => {
        for (let t = 0; t < g * g; t++)
          for (let c = 0; c < p; c++) {
            let v = 0;
            for (let j = 0; j < dim; j++)
              v += (s.tokens[t * dim + j]! - center[j]!) * directions[c * dim + j]!;
            proj[t * p + c] = v;
          }
        for (let y = 0; y < g; y++)
          for (let xx = 0; xx < g; xx++) {
            const row = ((si * g + y) * g + xx) * f;
            for (let oy = 0; oy < 3; oy++) {
              const ty = y + oy - 1;
              if (ty < 0 || ty >= g) continue;
              for (let ox = 0; ox < 3; ox++) {
                const tx = xx + ox - 1;
                if (tx < 0 || tx >= g) continue;
                x.set(proj.subarray((ty * g + tx) * p, (ty * g + tx + 1) * p), row + (oy * 3 + ox) * p);
              }
            }
          }
      });
      return { x, features: f };
    },
  };
}

/** Folds of slice indices: round-robin in slice order, so neighbouring slices fall in different folds. */
function foldsOf(count: number, folds: number): number[][] {
  return Array.from({ length: folds }, (_, f) =>
    Array.from({ length: count }, (_, i) => i).filter((i) => i % folds === f),
  );
}

async function fitOnce(
  train: readonly LabelledSlice[],
  o: FitSegmenterOptions,
  g: number,
): Promise<SegmenterWeights> {
  const { table, dim } = o;
  const k = table.size;
  const feat = featuriser(o.kind, train, dim, o.convChannels ?? SEGMENT_FIT_DEFAULTS.convChannels);
  const { x, features } = feat.design(train, g);
  const targets = new Float32Array(train.length * g * g * k);
  train.forEach((s, i) =>
    targets.set(tokenFractions(s.labels, s.rows, s.cols, table, o.model), i * g * g * k),
  );
  const scorer = await fitSoftLogistic(
    { rows: train.length * g * g, features, x, targets },
    {
      classes: k,
      l2: o.l2 ?? SEGMENT_FIT_DEFAULTS.l2,
      maxIterations: o.maxIterations ?? SEGMENT_FIT_DEFAULTS.maxIterations,
      balanced: true,
      signal: o.signal,
    },
  );
  const ks = kernelSize(o.kind);
  const kernel = new Float32Array(k * dim * ks * ks);
  if (o.kind === 'linear') {
    for (let q = 0; q < k; q++)
      for (let j = 0; j < dim; j++) kernel[q * dim + j] = scorer.weights[j * k + q]!;
  } else {
    const p = feat.channels;
    const dirs = feat.directions!;
    for (let q = 0; q < k; q++)
      for (let j = 0; j < dim; j++)
        for (let off = 0; off < 9; off++) {
          let v = 0;
          for (let c = 0; c < p; c++) v += dirs[c * dim + j]! * scorer.weights[(off * p + c) * k + q]!;
          kernel[(q * dim + j) * 9 + off] = v;
        }
  }
  return { kind: o.kind, dim, classes: table.classes, center: feat.center, kernel, bias: scorer.bias };
}

/**
 * Fits a segmentation head on labelled slices (soft class-fraction targets, class-balanced
 * multinomial logistic with L2), after a slice-fold cross-validation that reports held-out Dice
 * per class on the canonical pixels (the head's scores sampled back exactly as at inference).
 */
export async function fitSegmenter(
  slices: readonly LabelledSlice[],
  o: FitSegmenterOptions,
): Promise<FitSegmenterResult> {
  const g = tokenGridSize(o.model);
  if (slices.length === 0) throw new CuriaError('INVALID_ARGUMENT', 'no labelled slice to fit on');
  for (const [i, s] of slices.entries()) {
    if (s.tokens.length !== g * g * o.dim) {
      throw new CuriaError('INVALID_ARGUMENT', `slice ${i}: tokens must be ${g}×${g} × ${o.dim} values`);
    }
  }
  const folds = o.folds ?? Math.min(SEGMENT_FIT_DEFAULTS.maxFolds, slices.length);
  if (!Number.isInteger(folds) || folds < 1)
    throw new CuriaError('INVALID_ARGUMENT', `folds must be ≥ 1 (got ${folds})`);
  if (folds > slices.length) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `${folds} folds need at least ${folds} labelled slices (got ${slices.length})`,
    );
  }
  const k = o.table.size;
  const diceSums = new Float64Array(k);
  const diceCounts = new Float64Array(k);
  if (folds > 1) {
    for (const held of foldsOf(slices.length, folds)) {
      const train = slices.filter((_, i) => !held.includes(i));
      const head = await fitOnce(train, o, g);
      const inter = new Float64Array(k);
      const pred = new Float64Array(k);
      const ref = new Float64Array(k);
      for (const i of held) {
        const s = slices[i]!;
        const sampler = new TokenSampler(s.rows, s.cols, g, k);
        const p = sampler.sample(segmenterScores(head, s.tokens, g), 'logits');
        for (let px = 0; px < p.classes.length; px++) {
          const a = p.classes[px]!;
          const b = o.table.indexOf(s.labels[px]!);
          pred[a]!++;
          ref[b]!++;
          if (a === b) inter[a]!++;
        }
      }
      for (let q = 1; q < k; q++) {
        if (ref[q]! === 0 && pred[q]! === 0) continue;
        diceSums[q]! += (2 * inter[q]!) / (pred[q]! + ref[q]!);
        diceCounts[q]!++;
      }
    }
  }
  const head = await fitOnce(slices, o, g);
  const cvDice = new Map<string, number>();
  o.table.classes.forEach((c, i) => {
    if (diceCounts[i + 1]! > 0) cvDice.set(c.name, diceSums[i + 1]! / diceCounts[i + 1]!);
  });
  return { head, cvDice, folds, tokens: slices.length * g * g };
}
