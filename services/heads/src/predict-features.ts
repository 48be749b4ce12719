import { CuriaError } from '@curia/errors';
import type { FeatureBlock, Head, HeadFeatures } from '@curia/heads';
import type { heads } from '@curia/proto';

import { decodeFloatTensor } from './codec.js';

const invalid = (msg: string): CuriaError => new CuriaError('INVALID_ARGUMENT', msg);

/** Limits applied while decoding a Predict request. */
export interface PredictLimits {
  readonly maxSlices: number;
}

/** Tokens per slice the head expects for input `i`, when its backbone fingerprint fixes the grid. */
function expectedTokens(head: Head, i: number): number | undefined {
  const spec = head.meta.requirements.inputs[i]!;
  if (spec.kind !== 'avg_pooled_tokens' || spec.k === 0) return 1;
  const patches = head.meta.backbone?.num_patches;
  if (!patches) return undefined;
  const g = Math.floor(Math.sqrt(patches) / spec.k);
  return g * g;
}

/**
 * Turns PredictRequest.slices into the engine's HeadFeatures for `head`: one Feature per entry of
 * the head's requirements per slice, each (D) or (T, D) as the requirement defines, F32/F16/BF16,
 * finite. INVALID_ARGUMENT names slices[i] (slice_id) and request_index. Mask-pooled features count
 * as non-empty (EmbedService rejects empty masks).
 */
export function decodePredictFeatures(
  head: Head,
  slices: readonly heads.SliceFeatures[],
  limits: PredictLimits,
): HeadFeatures {
  const req = head.meta.requirements;
  const d = req.hidden;
  const n = slices.length;
  if (n === 0) throw invalid('slices is empty; send the features of at least one slice');
  if (n > limits.maxSlices) {
    throw new CuriaError(
      'RESOURCE_EXHAUSTED',
      `slices has ${n} entries, above the limit of ${limits.maxSlices} (CURIA_HEADS_MAX_PREDICT_SLICES)`,
    );
  }
  const tokens = req.inputs.map((_, i) => expectedTokens(head, i));
  const blocks: (Float32Array | undefined)[] = req.inputs.map(() => undefined);
  for (let s = 0; s < n; s++) {
    const slice = slices[s]!;
    const seen = new Set<number>();
    for (const f of slice.features) {
      const i = f.requestIndex;
      const where = `slices[${s}] (slice_id ${slice.sliceId}) feature request_index ${i}`;
      if (i >= req.inputs.length) {
        throw invalid(`${where}: head '${head.meta.name}' takes ${req.inputs.length} feature(s)`);
      }
      if (seen.has(i)) throw invalid(`${where} appears twice`);
      seen.add(i);
      const t = decodeFloatTensor(f.tensor, `${where} tensor`);
      const shape = t.shape;
      const perSlice = shape.length === 1 ? 1 : shape.length === 2 ? shape[0]! : -1;
      const width = shape[shape.length - 1];
      const want = tokens[i];
      if (perSlice < 1 || width !== d || (want !== undefined && perSlice !== want)) {
        throw invalid(
          `${where} has shape [${shape.join(', ')}]; the head needs ${want === 1 ? `[${d}]` : `[${want ?? 'T'}, ${d}]`}`,
        );
      }
      if (want === undefined) tokens[i] = perSlice;
      let block = blocks[i];
      if (!block) blocks[i] = block = new Float32Array(n * perSlice * d);
      block.set(t.values, s * perSlice * d);
    }
    if (seen.size !== req.inputs.length) {
      const missing = req.inputs.map((_, i) => i).filter((i) => !seen.has(i));
      throw invalid(
        `slices[${s}] (slice_id ${slice.sliceId}) lacks the feature for request_index ${missing.join(', ')}`,
      );
    }
  }
  const out: FeatureBlock[] = blocks.map((data, i) => {
    const spec = req.inputs[i]!;
    const b = { data: data!, tokensPerSlice: tokens[i]! };
    return spec.kind === 'mask_pooled' ? { ...b, maskCounts: new Float64Array(n).fill(1) } : b;
  });
  return { slices: n, hidden: d, blocks: out };
}
