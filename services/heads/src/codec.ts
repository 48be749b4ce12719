import { FLOAT_DTYPES, wireFloats } from '@curia/client';
import type { FeatureRequirement, FeatureSpec, Head, HeadOutput } from '@curia/heads';
import { common } from '@curia/proto';

import type { StoredHead } from './store.js';

/** A decoded float tensor: values (always a fresh or safely aligned Float32Array) and its shape. */
export interface DecodedTensor {
  readonly values: Float32Array;
  readonly shape: readonly number[];
}

/**
 * Decodes a wire tensor of floating dtype (F32, F16, BF16) to float32, checking the byte length
 * and rejecting NaN/Inf; INVALID_ARGUMENT names `field`. Never echoes values.
 */
export function decodeFloatTensor(t: common.Tensor | undefined, field: string): DecodedTensor {
  const values = wireFloats(t, field, { dtypes: FLOAT_DTYPES, finite: true });
  return { values, shape: t!.shape };
}

/** A little-endian F32 wire tensor (copies the values). */
export function f32Tensor(values: ArrayLike<number>, shape: readonly number[]): common.Tensor {
  const f = values instanceof Float32Array ? values : Float32Array.from(values);
  return {
    dtype: common.DType.F32,
    shape: [...shape],
    data: new Uint8Array(f.buffer, f.byteOffset, f.byteLength).slice(),
  };
}

/** Engine feature spec → wire FeatureRequest (F32). */
export function featureRequestOf(spec: FeatureSpec): common.FeatureRequest {
  const dtype = common.DType.F32;
  switch (spec.kind) {
    case 'cls':
      return { kind: { $case: 'cls', value: { prenorm: spec.norm === 'pre' } }, dtype };
    case 'mask_pooled':
      return { kind: { $case: 'maskPooled', value: { prenorm: spec.norm === 'pre' } }, dtype };
    case 'avg_pooled_tokens':
      return {
        kind: { $case: 'avgPooledTokens', value: { kernelSize: spec.k, prenorm: spec.norm === 'pre' } },
        dtype,
      };
  }
}

/** Engine requirement → wire FeatureRequirement. */
export function requirementOf(req: FeatureRequirement): common.FeatureRequirement {
  const slices: common.SliceSelection =
    typeof req.slices === 'object'
      ? { selection: { $case: 'centralCount', value: req.slices.central } }
      : { selection: { $case: 'all', value: {} } };
  return {
    features: req.inputs.map(featureRequestOf),
    slices,
    level: req.slices === 'each' ? common.HeadInputLevel.SLICE : common.HeadInputLevel.VOLUME,
    requiresMask: req.mask,
  };
}

/** Wire HeadKind of an engine head. */
export function headKindOf(head: Head): common.HeadKind {
  const m = head.meta;
  if (m.kind === 'cox') return common.HeadKind.COX;
  if (m.kind === 'mlp')
    return m.task === 'regression' ? common.HeadKind.MLP_REGRESSOR : common.HeadKind.MLP_CLASSIFIER;
  return m.task === 'regression' ? common.HeadKind.RIDGE : common.HeadKind.LOGISTIC;
}

/** Wire HeadTask of an engine task. */
export function headTaskOf(task: Head['meta']['task']): common.HeadTask {
  switch (task) {
    case 'classification':
      return common.HeadTask.CLASSIFICATION;
    case 'multilabel':
      return common.HeadTask.MULTILABEL;
    case 'regression':
      return common.HeadTask.REGRESSION;
    case 'survival':
      return common.HeadTask.SURVIVAL;
  }
}

/**
 * Largest description a head carries in HeadInfo, UTF-8 bytes: Fit refuses longer ones, and one
 * stored before that cap is cut here, so that ListHeads and GetInfo (which list every head) stay
 * small.
 */
export const MAX_DESCRIPTION_BYTES = 4096;

/** `text` cut to at most `maxBytes` UTF-8 bytes (whole characters), with `…` when cut. */
export function clipUtf8(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes || Buffer.byteLength(text) <= maxBytes) return text;
  const cut = Buffer.from(text)
    .subarray(0, maxBytes - 3)
    .toString('utf8');
  // A character split by the cut decodes as U+FFFD: drop it.
  return `${cut.replace(/\uFFFD$/, '')}…`;
}

/**
 * HeadInfo of a stored head version; `isDefault` when the deployment runs it by default, `promoted`
 * when it is what the unversioned name resolves to.
 */
export function headInfoOf(s: StoredHead, isDefault = false, promoted = false): common.HeadInfo {
  const m = s.head.meta;
  return {
    name: m.name,
    version: m.version,
    kind: headKindOf(s.head),
    task: headTaskOf(m.task),
    labels: m.task === 'classification' || m.task === 'multilabel' ? [...m.labels] : [],
    requirements: {
      ...requirementOf(m.requirements),
      // A fitted slice head reads the slices its Fit asked for (the engine applies it to whatever it gets).
      ...(s.service.selection ? { slices: s.service.selection } : {}),
    },
    demo: s.service.demo,
    model: s.service.model,
    modelSha256: '',
    description:
      clipUtf8(s.service.description, MAX_DESCRIPTION_BYTES) || `${m.kind} head (${m.provenance.source})`,
    unit: s.service.unit,
    isDefault,
    promoted,
  };
}

/** Row `r` of a [rows, cols] matrix. */
function row(a: Float32Array, r: number, cols: number): Float32Array {
  return a.subarray(r * cols, (r + 1) * cols);
}

function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

/**
 * S(t) = exp(−H0(t)·exp(risk)) at `times`, with H0 the stored step function (0 before the first
 * baseline time).
 */
export function survivalAt(
  baseTimes: Float32Array,
  cumHaz: Float32Array,
  risk: number,
  times: readonly number[],
): number[] {
  const e = Math.exp(risk);
  let j = -1;
  return times.map((t) => {
    while (j + 1 < baseTimes.length && baseTimes[j + 1]! <= t) j++;
    return Math.exp(-(j < 0 ? 0 : cumHaz[j]!) * e);
  });
}

/** How to build one Prediction from head outputs. */
export interface PredictionContext {
  readonly head: Head;
  /** Survival: evaluation grid (empty = the head's baseline event times). */
  readonly survivalTimes: readonly number[];
}

/** The Prediction for one [outputs] row of logits (or an aggregate row). */
export function predictionOf(
  ctx: PredictionContext,
  logits: Float32Array,
  probabilities: Float32Array | undefined,
): common.Prediction {
  const m = ctx.head.meta;
  const k = logits.length;
  switch (m.task) {
    case 'classification':
      return {
        logits: f32Tensor(logits, [k]),
        ...(probabilities ? { probabilities: f32Tensor(probabilities, [k]) } : {}),
        labels: [...m.labels],
        // A single-logit head is a sigmoid score with no class choice to report.
        ...(k > 1 ? { predictedIndex: argmax(probabilities ?? logits) } : {}),
      };
    case 'multilabel':
      // Independent labels: no single predicted index.
      return {
        logits: f32Tensor(logits, [k]),
        ...(probabilities ? { probabilities: f32Tensor(probabilities, [k]) } : {}),
        labels: [...m.labels],
      };
    case 'regression':
      return { labels: [...m.labels], value: logits[0]! };
    case 'survival': {
      const risk = logits[0]!;
      const base = ctx.head.weight('cox.baseline_times').data;
      const times = ctx.survivalTimes.length ? [...ctx.survivalTimes] : Array.from(base);
      const values = survivalAt(base, ctx.head.weight('cox.baseline_cumhaz').data, risk, times);
      return { labels: [], riskScore: risk, survival: { times, values } };
    }
  }
}

/**
 * Per-row predictions and the study-level aggregate: the head's single row for volume heads; for
 * slice heads the mean of per-slice logits (classification: mean probabilities, argmax of those).
 */
export function predictionsOf(
  ctx: PredictionContext,
  out: HeadOutput,
): { study: common.Prediction; rows: common.Prediction[] } {
  const k = out.outputs;
  const rows: common.Prediction[] = [];
  for (let r = 0; r < out.rows; r++) {
    rows.push(predictionOf(ctx, row(out.logits, r, k), out.probabilities && row(out.probabilities, r, k)));
  }
  if (out.rows === 1) return { study: rows[0]!, rows };
  const meanLogits = new Float32Array(k);
  const meanProb = out.probabilities ? new Float32Array(k) : undefined;
  for (let r = 0; r < out.rows; r++) {
    for (let c = 0; c < k; c++) {
      meanLogits[c]! += out.logits[r * k + c]! / out.rows;
      if (meanProb) meanProb[c]! += out.probabilities![r * k + c]! / out.rows;
    }
  }
  return { study: predictionOf(ctx, meanLogits, meanProb), rows };
}
