import { describe, expect, it } from 'vitest';

import { common } from '@curia/proto';

import { EmbeddingCache } from './embedding-cache.js';
import { featureKey, projectionDigest } from './feature-key.js';

const f32 = (values: readonly number[], shape: readonly number[]): common.Tensor => ({
  dtype: common.DType.F32,
  shape: [...shape],
  data: new Uint8Array(Float32Array.from(values).buffer),
});

/** A (4, 2) projection request; every call builds fresh objects and buffers. */
function projected(
  o: { basis?: number[]; mean?: number[] | null; prenorm?: boolean; dtype?: common.DType } = {},
): common.FeatureRequest {
  const basis = o.basis ?? [1, 0, 0, 1, 0.5, 0.5, -1, 2];
  return {
    kind: {
      $case: 'projectedTokens',
      value: {
        prenorm: o.prenorm ?? false,
        basis: f32(basis, [4, basis.length / 4]),
        mean: o.mean === null ? undefined : f32(o.mean ?? [0.1, 0.2, 0.3, 0.4], [4]),
      },
    },
    dtype: o.dtype ?? common.DType.UNSPECIFIED,
  };
}

describe('featureKey', () => {
  it('gives the existing kinds their keys, unchanged', () => {
    const key = (kind: common.FeatureRequest['kind'], dtype = common.DType.UNSPECIFIED) =>
      featureKey({ kind, dtype });
    expect(key({ $case: 'cls', value: { prenorm: true } })).toBe('cls:pre:F32');
    expect(key({ $case: 'patchTokens', value: { prenorm: false } }, common.DType.F16)).toBe(
      'patchTokens:post:F16',
    );
    expect(key({ $case: 'avgPooledTokens', value: { kernelSize: 4, prenorm: true } })).toBe('avg4:pre:F32');
    expect(key({ $case: 'lastHiddenState', value: {} })).toBe('lastHiddenState:F32');
    expect(() => key(undefined)).toThrow(/no kind/);
  });

  it('keys a projection by C and a short digest of its basis and mean bytes', () => {
    const a = featureKey(projected());
    // Same bytes in other objects: the same key (the requests merge; cached features are reused).
    expect(featureKey(projected())).toBe(a);
    expect(featureKey(projected({ dtype: common.DType.F32 }))).toBe(a);
    expect(a).toMatch(/^proj2:[0-9a-f]{16}:post:F32$/);
    expect(a.length).toBeLessThan(40); // a digest, never the bytes
    // Anything that changes Embed's values changes the key.
    const others = [
      projected({ basis: [1, 0, 0, 1, 0.5, 0.5, -1, 2.0001] }),
      projected({ basis: [1, 0, 0, 1, 0.5, 0.5, -1, 2, 3, 4, 5, 6] }), // C = 3
      projected({ basis: [1, 0, 0, 1] }), // C = 1
      projected({ mean: [0.1, 0.2, 0.3, 0.5] }),
      projected({ mean: [0, 0, 0, 0] }),
      projected({ mean: null }),
      projected({ prenorm: true }),
      projected({ dtype: common.DType.F16 }),
    ].map(featureKey);
    expect(new Set([a, ...others]).size).toBe(others.length + 1);
    expect(others[1]).toMatch(/^proj3:/);
    expect(others[2]).toMatch(/^proj1:/);
    // Same bytes but another layout ((2, 4) instead of (4, 2)) is another projection.
    const p = projected().kind as { $case: 'projectedTokens'; value: common.ProjectedTokensFeature };
    const reshaped = { ...p.value, basis: { ...p.value.basis!, shape: [2, 4] } };
    expect(projectionDigest(reshaped)).not.toBe(projectionDigest(p.value));
    // The cache keeps the two projections of one slice apart.
    const cache = new EmbeddingCache(1 << 20);
    cache.set(EmbeddingCache.key('sha', 'slice', a), f32([1], [1]));
    expect(cache.get(EmbeddingCache.key('sha', 'slice', others[0]!))).toBeUndefined();
    expect(cache.get(EmbeddingCache.key('sha', 'slice', featureKey(projected())))).toBeDefined();
  });

  it('refuses a projection without a (D, C) basis', () => {
    const p = projected().kind as { $case: 'projectedTokens'; value: common.ProjectedTokensFeature };
    const without = { kind: { ...p, value: { ...p.value, basis: undefined } }, dtype: 0 };
    expect(() => featureKey(without)).toThrow(/projected_tokens.basis is missing/);
    const flat = { kind: { ...p, value: { ...p.value, basis: f32([1, 2, 3, 4], [4]) } }, dtype: 0 };
    expect(() => featureKey(flat)).toThrow(/projected_tokens.basis must have shape \(D, C\) \(got \[4\]\)/);
  });
});
