import type { HeadFeatures, Head } from '@curia/heads';
import type { heads } from '@curia/proto';

import { f32Tensor } from './codec.js';

/**
 * Encodes engine features as PredictRequest.slices (F32): for each slice one Feature per head
 * input, shaped (D) for one token per slice and (T, D) otherwise. `sliceIds` default to 0..S−1.
 */
export function sliceFeaturesOf(
  head: Head,
  f: HeadFeatures,
  sliceIds?: readonly number[],
): heads.SliceFeatures[] {
  const d = f.hidden;
  return Array.from({ length: f.slices }, (_, s) => ({
    sliceId: sliceIds?.[s] ?? s,
    features: f.blocks.map((b, i) => {
      const t = b.tokensPerSlice;
      const spec = head.meta.requirements.inputs[i]!;
      // The wire shapes k×k-pooled tokens (k > 0) as (T, D) even for T = 1; everything else is (D).
      const isVector = t === 1 && !(spec.kind === 'avg_pooled_tokens' && spec.k > 0);
      return {
        requestIndex: i,
        tensor: f32Tensor(b.data.subarray(s * t * d, (s + 1) * t * d), isVector ? [d] : [t, d]),
      };
    }),
  }));
}
