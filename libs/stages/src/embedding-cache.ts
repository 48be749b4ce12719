import { createHash } from 'node:crypto';

import type { common } from '@curia/proto';

/** Hooks the cache reports through (metrics). */
export interface CacheObserver {
  onEvict?(count: number): void;
  onSize?(bytes: number, entries: number): void;
}

/** Fixed per-entry overhead counted against the byte budget (key, map slot, tensor header). */
const ENTRY_OVERHEAD_BYTES = 256;

/**
 * Slice features by (model sha256, preprocessed-slice digest, output key), bounded in bytes with
 * least-recently-used eviction. A Map keeps insertion order, so re-inserting on every hit makes
 * its first key the least recently used one.
 */
export class EmbeddingCache {
  private readonly entries = new Map<string, common.Tensor>();
  private bytes = 0;

  constructor(
    /** Byte budget; 0 disables the cache. */
    readonly maxBytes: number,
    private readonly observer: CacheObserver = {},
  ) {}

  /** The key of one output of one slice under one model. */
  static key(modelSha256: string, sliceDigest: string, outputKey: string): string {
    return `${modelSha256}|${sliceDigest}|${outputKey}`;
  }

  /** Bytes currently held (tensor data plus a fixed overhead per entry). */
  get sizeBytes(): number {
    return this.bytes;
  }

  /** Entries currently held. */
  get size(): number {
    return this.entries.size;
  }

  /** The cached tensor (and marks it most recently used), or undefined. */
  get(key: string): common.Tensor | undefined {
    const t = this.entries.get(key);
    if (t) {
      this.entries.delete(key);
      this.entries.set(key, t);
    }
    return t;
  }

  /** True when every key is cached (does not touch recency). */
  hasAll(keys: readonly string[]): boolean {
    return keys.every((k) => this.entries.has(k));
  }

  /**
   * Stores a copy of `tensor` (decoded messages hold views into larger buffers; a copy keeps the
   * byte accounting exact and lets the message be collected), evicting as needed. Tensors larger
   * than the whole budget are not stored.
   */
  set(key: string, tensor: common.Tensor): void {
    if (this.maxBytes === 0) return;
    const cost = tensor.data.byteLength + ENTRY_OVERHEAD_BYTES;
    if (cost > this.maxBytes) return;
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.bytes -= old.data.byteLength + ENTRY_OVERHEAD_BYTES;
    }
    let evicted = 0;
    while (this.bytes + cost > this.maxBytes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      const t = this.entries.get(oldest.value)!;
      this.entries.delete(oldest.value);
      this.bytes -= t.data.byteLength + ENTRY_OVERHEAD_BYTES;
      evicted++;
    }
    this.entries.set(key, { dtype: tensor.dtype, shape: [...tensor.shape], data: tensor.data.slice() });
    this.bytes += cost;
    if (evicted > 0) this.observer.onEvict?.(evicted);
    this.observer.onSize?.(this.bytes, this.entries.size);
  }
}

/**
 * Digest of one preprocessed slice (dtype, shape and bytes) and, when mask-pooled outputs are in
 * play, of its mask: identical inputs to the backbone give identical digests.
 */
export function sliceDigest(pixels: common.Tensor, mask?: common.Tensor): string {
  const h = createHash('sha256');
  h.update(`${pixels.dtype}:${pixels.shape.join('x')}:`);
  h.update(pixels.data);
  if (mask) {
    h.update(`|mask:${mask.dtype}:${mask.shape.join('x')}:`);
    h.update(mask.data);
  }
  return h.digest('base64url');
}
