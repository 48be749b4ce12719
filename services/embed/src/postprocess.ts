import { CuriaError } from '@curia/errors';
import {
  avgPoolTokens,
  clsToken,
  maskPool,
  patchTokens,
  projectTokens,
  type TokenLayout,
} from '@curia/model';
import type { common } from '@curia/proto';

import { encodeFeature, type OutputSpec } from './codec.js';

/** One slice's token sequences, (T, D) each, as the batch run returned them. */
export interface SliceTokens {
  readonly lastHiddenState?: Float32Array;
  readonly lastBlockPrenorm?: Float32Array;
}

function sequence(tokens: SliceTokens, prenorm: boolean): Float32Array {
  const s = prenorm ? tokens.lastBlockPrenorm : tokens.lastHiddenState;
  if (!s)
    throw new CuriaError(
      'INTERNAL',
      `batch result lacks ${prenorm ? 'last_block_prenorm' : 'last_hidden_state'}`,
    );
  return s;
}

/**
 * Computes every requested feature of one slice from its token sequences, in request order
 * (projected_tokens: the patch tokens times the stream's decoded projection).
 * `mask` (S·S bytes) is required when a mask_pooled output is requested (the codec checked it).
 */
export function computeFeatures(
  outputs: readonly OutputSpec[],
  tokens: SliceTokens,
  layout: TokenLayout,
  grid: number,
  mask: Uint8Array | undefined,
): common.Feature[] {
  const d = layout.hidden;
  return outputs.map((o, i) => {
    const seq = sequence(tokens, o.prenorm);
    switch (o.kind) {
      case 'cls':
        return encodeFeature(i, clsToken(seq, layout), [d], o.dtype);
      case 'last_hidden_state':
        return encodeFeature(i, seq, [layout.tokens, d], o.dtype);
      case 'patch_tokens':
        return encodeFeature(i, patchTokens(seq, layout), [grid * grid, d], o.dtype);
      case 'mask_pooled': {
        if (!mask) throw new CuriaError('INTERNAL', 'mask_pooled requested without a decoded mask');
        return encodeFeature(i, maskPool(patchTokens(seq, layout), mask, d), [d], o.dtype);
      }
      case 'avg_pooled_tokens': {
        const k = o.kernelSize === 0 ? grid : o.kernelSize;
        const pooled = avgPoolTokens(patchTokens(seq, layout), k, d);
        const g = grid / k;
        return encodeFeature(i, pooled, o.kernelSize === 0 ? [d] : [g * g, d], o.dtype);
      }
      case 'projected_tokens': {
        const p = o.projection;
        if (!p) throw new CuriaError('INTERNAL', 'projected_tokens requested without a decoded projection');
        const projected = projectTokens(patchTokens(seq, layout), p.basis, p.mean, d, p.channels);
        return encodeFeature(i, projected, [grid * grid, p.channels], o.dtype);
      }
    }
  });
}
