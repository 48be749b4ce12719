import { CuriaError } from '@curia/errors';
import type { common, embed, preprocess } from '@curia/proto';

import { embedSlices, type EmbedClient, type SliceToEmbed } from './embed-stream.js';
import { EmbeddingCache, sliceDigest } from './embedding-cache.js';
import { featureKey } from './feature-key.js';

/** What one preprocessed slice needs from the backbone. */
export interface SliceRequest {
  /** Positions (in {@link EmbedStudyOptions.outputs}) some consumer reads from this slice. */
  readonly outputs: readonly number[];
  /** Region-of-interest mask sent with the slice (for mask-pooled outputs). */
  readonly mask?: common.Tensor | undefined;
  /**
   * Positions computed for this slice but meaningless (pooled over a placeholder mask): never
   * returned, never cached.
   */
  readonly discard?: ReadonlySet<number> | undefined;
}

/** One slice's features, in the order the slices came. */
export interface EmbeddedSlice {
  readonly mapping: common.SliceMapping;
  /** Tensors by output position: every requested one, others where Embed computed them. */
  readonly features: readonly (common.Tensor | undefined)[];
  /** True when every requested output came from the cache (no Embed call for this slice). */
  readonly cached: boolean;
}

/** Options of {@link embedStudy}. */
export interface EmbedStudyOptions {
  readonly client: EmbedClient;
  /** The backbone, as resolved (its sha256 keys the cache). */
  readonly model: common.ModelInfo;
  /** Distinct backbone outputs the study needs; every embedded slice gets all of them. */
  readonly outputs: readonly common.FeatureRequest[];
  /** Opaque study id, for Embed's logs. */
  readonly studyId: string;
  /** Decides what a slice needs; `undefined` skips the slice. */
  readonly select: (slice: preprocess.PreprocessedSlice) => SliceRequest | undefined;
  /** Features cache shared by studies (absent or 0 bytes: no caching). */
  readonly cache?: EmbeddingCache | undefined;
  /** Slices sent to Embed and not yet answered. */
  readonly window: number;
  /** Attempts on UNAVAILABLE (a dead or draining Embed replica), including the first. */
  readonly attempts: number;
  readonly signal: AbortSignal;
  readonly deadline?: Date | undefined;
  readonly onRetry?: () => void;
  /** Called with the summary of each completed Embed stream. */
  readonly onSummary?: (done: embed.EmbedSummary) => void;
}

interface Pending {
  readonly mapping: common.SliceMapping;
  readonly discard: ReadonlySet<number> | undefined;
  features: (common.Tensor | undefined)[] | null;
  readonly cached: boolean;
}

/**
 * Embeds a study's preprocessed slices: each slice `select` wants is answered from the cache when
 * every output it needs is cached, and otherwise sent to Embed on one resilient stream (bounded
 * window, admission, retry on another replica; see {@link embedSlices}). Results come back in the
 * order of `slices`, as soon as every earlier slice is answered, and fresh features are cached.
 * No Embed call is opened when every slice is cached.
 */
export async function* embedStudy(
  slices: AsyncIterable<preprocess.PreprocessedSlice>,
  o: EmbedStudyOptions,
): AsyncGenerator<EmbeddedSlice> {
  const cache = o.cache && o.cache.maxBytes > 0 ? o.cache : undefined;
  const outputKeys = o.outputs.map(featureKey);
  const digests = new WeakMap<SliceToEmbed, string>();
  const digestOf = (s: SliceToEmbed): string => {
    let d = digests.get(s);
    if (!d) digests.set(s, (d = sliceDigest(s.pixels, s.mask)));
    return d;
  };
  const key = (digest: string, output: number): string =>
    EmbeddingCache.key(o.model.sha256, digest, outputKeys[output]!);
  // Slices in arrival order; `head` is the first one not yet yielded.
  const order: (Pending | undefined)[] = [];
  let head = 0;
  const byId = new Map<number, Pending>();

  async function* toEmbed(): AsyncGenerator<SliceToEmbed> {
    for await (const slice of slices) {
      const { mapping, pixels } = slice;
      if (!mapping || !pixels)
        throw new CuriaError('INTERNAL', 'preprocess sent a slice without mapping or pixels');
      const want = o.select(slice);
      if (!want) continue;
      const item: SliceToEmbed = { id: mapping.canonicalIndex, pixels, mask: want.mask };
      if (cache) {
        const keys = want.outputs.map((i) => key(digestOf(item), i));
        if (cache.hasAll(keys)) {
          const features: (common.Tensor | undefined)[] = [];
          want.outputs.forEach((i, j) => (features[i] = cache.get(keys[j]!)));
          order.push({ mapping, discard: want.discard, features, cached: true });
          continue;
        }
      }
      if (byId.has(item.id)) throw new CuriaError('INTERNAL', `preprocess sent slice ${item.id} twice`);
      const entry: Pending = { mapping, discard: want.discard, features: null, cached: false };
      order.push(entry);
      byId.set(item.id, entry);
      yield item;
    }
  }

  function* flush(): Generator<EmbeddedSlice> {
    for (let e = order[head]; e?.features; e = order[head]) {
      order[head++] = undefined; // the tensors go once yielded
      yield { mapping: e.mapping, features: e.features, cached: e.cached };
    }
    if (head > 1024 && head * 2 > order.length) {
      order.splice(0, head);
      head = 0;
    }
  }

  const results = embedSlices(o.client, toEmbed(), {
    start: { model: `${o.model.name}@${o.model.version}`, outputs: [...o.outputs], studyId: o.studyId },
    window: o.window,
    attempts: o.attempts,
    signal: o.signal,
    deadline: o.deadline,
    ...(o.onRetry ? { onRetry: o.onRetry } : {}),
    ...(o.onSummary ? { onSummary: o.onSummary } : {}),
  });
  for await (const r of results) {
    const entry = byId.get(r.slice.id);
    byId.delete(r.slice.id);
    if (!entry) throw new CuriaError('INTERNAL', `embed answered slice ${r.slice.id}, which was not sent`);
    const features: (common.Tensor | undefined)[] = [];
    for (const f of r.features) {
      if (!f.tensor || f.requestIndex >= o.outputs.length || entry.discard?.has(f.requestIndex)) continue;
      features[f.requestIndex] = f.tensor;
      cache?.set(key(digestOf(r.slice), f.requestIndex), f.tensor);
    }
    entry.features = features;
    yield* flush();
  }
  yield* flush();
  if (head !== order.length) throw new CuriaError('INTERNAL', 'some slices were never embedded');
}
