import { describe, expect, it } from 'vitest';

import { common } from '@curia/proto';

import { EmbeddingCache, sliceDigest } from './embedding-cache.js';

const tensor = (bytes: number, fill = 1): common.Tensor => ({
  dtype: common.DType.F32,
  shape: [bytes / 4],
  data: new Uint8Array(bytes).fill(fill),
});

describe('EmbeddingCache', () => {
  it('evicts the least recently used entries to stay within its byte budget', () => {
    const events: number[] = [];
    const cache = new EmbeddingCache(3 * (1024 + 256), { onEvict: (n) => events.push(n) });
    cache.set('a', tensor(1024));
    cache.set('b', tensor(1024));
    cache.set('c', tensor(1024));
    expect(cache.get('a')).toBeDefined(); // a becomes most recent: b is now the oldest
    cache.set('d', tensor(1024));
    expect(cache.get('b')).toBeUndefined();
    expect(cache.hasAll(['a', 'c', 'd'])).toBe(true);
    expect(events).toEqual([1]);
    expect(cache.sizeBytes).toBeLessThanOrEqual(cache.maxBytes);
    expect(cache.size).toBe(3);
  });

  it('stores a private copy and refuses entries larger than the budget; 0 disables it', () => {
    const cache = new EmbeddingCache(2048);
    const t = tensor(1024, 7);
    cache.set('k', t);
    t.data.fill(0);
    expect(cache.get('k')!.data[0]).toBe(7);
    cache.set('huge', tensor(4096));
    expect(cache.get('huge')).toBeUndefined();
    const off = new EmbeddingCache(0);
    off.set('k', tensor(4));
    expect(off.size).toBe(0);
  });

  it('replacing a key does not double-count its bytes', () => {
    const cache = new EmbeddingCache(10_000);
    cache.set('k', tensor(1024));
    cache.set('k', tensor(2048));
    expect(cache.sizeBytes).toBe(2048 + 256);
  });
});

describe('sliceDigest', () => {
  it('changes with pixels, dtype, shape and mask, and only with them', () => {
    const a = tensor(64, 1);
    expect(sliceDigest(a)).toBe(sliceDigest(tensor(64, 1)));
    expect(sliceDigest(a)).not.toBe(sliceDigest(tensor(64, 2)));
    expect(sliceDigest(a)).not.toBe(sliceDigest({ ...a, dtype: common.DType.F16 }));
    expect(sliceDigest(a)).not.toBe(sliceDigest({ ...a, shape: [4, 4] }));
    const m = { dtype: common.DType.U8, shape: [4], data: new Uint8Array([0, 1, 1, 0]) };
    expect(sliceDigest(a, m)).not.toBe(sliceDigest(a));
  });
});
