import { createHash } from 'node:crypto';

import { CuriaError } from '@curia/errors';
import { common } from '@curia/proto';

/** Hex characters of the sha256 kept in a projected_tokens key (64 bits). */
const PROJECTION_DIGEST_HEX = 16;

/**
 * A short sha256 of a projection's basis and mean: dtype, shape and bytes of each (an unset mean
 * hashes differently from a zero one). Two requests share it only if Embed computes the same
 * values for both.
 */
export function projectionDigest(p: common.ProjectedTokensFeature): string {
  const h = createHash('sha256');
  for (const [name, t] of [
    ['basis', p.basis],
    ['mean', p.mean],
  ] as const) {
    if (!t) {
      h.update(`${name}:unset;`);
      continue;
    }
    h.update(`${name}:${t.dtype}:${t.shape.join('x')}:${t.data.byteLength};`);
    h.update(t.data);
  }
  return h.digest('hex').slice(0, PROJECTION_DIGEST_HEX);
}

/**
 * A stable string for a feature request: the same request always gives the same key (identical
 * requests are merged on this key, and cached features are found by it). A projected_tokens key
 * carries C and {@link projectionDigest}, so two projections never share one. INVALID_ARGUMENT
 * when the request has no kind, or a projected_tokens request no (D, C) basis (Embed checks the
 * rest).
 */
export function featureKey(f: common.FeatureRequest): string {
  const dtype = f.dtype === common.DType.UNSPECIFIED ? common.DType.F32 : f.dtype;
  const k = f.kind;
  const d = common.DType[dtype] ?? String(dtype);
  if (!k) throw new CuriaError('INVALID_ARGUMENT', 'a feature request has no kind (cls, patch_tokens, ...)');
  switch (k.$case) {
    case 'lastHiddenState':
      return `${k.$case}:${d}`;
    case 'cls':
    case 'patchTokens':
    case 'maskPooled':
      return `${k.$case}:${k.value.prenorm ? 'pre' : 'post'}:${d}`;
    case 'avgPooledTokens':
      return `avg${k.value.kernelSize}:${k.value.prenorm ? 'pre' : 'post'}:${d}`;
    case 'projectedTokens': {
      const shape = k.value.basis?.shape;
      if (shape?.length !== 2) {
        throw new CuriaError(
          'INVALID_ARGUMENT',
          `projected_tokens.basis ${shape ? `must have shape (D, C) (got [${shape.join(', ')}])` : 'is missing'}`,
        );
      }
      const pre = k.value.prenorm ? 'pre' : 'post';
      return `proj${shape[1]}:${projectionDigest(k.value)}:${pre}:${d}`;
    }
  }
}
