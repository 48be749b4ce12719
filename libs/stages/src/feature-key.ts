import { CuriaError } from '@curia/errors';
import { common } from '@curia/proto';

/**
 * A stable string for a feature request: the same request always gives the same key (identical
 * requests are merged on this key, and cached features are found by it). INVALID_ARGUMENT when
 * the request has no kind.
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
  }
}
