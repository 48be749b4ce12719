import { afterEach, describe, expect, it } from 'vitest';

import { common, type preprocess } from '@curia/proto';

import { EmbeddingCache } from './embedding-cache.js';
import { embedStudy, type EmbedStudyOptions, type SliceRequest } from './study-embedding.js';
import { startFakeEmbedServer, type FakeEmbed } from './testing/fake-embed.js';

const fakes: FakeEmbed[] = [];
afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

const model: common.ModelInfo = {
  name: 'm',
  version: '1',
  sha256: 'abc',
  demoWeights: true,
  isDefault: true,
  featureSpace: '',
};
const outputs: common.FeatureRequest[] = [
  { kind: { $case: 'cls', value: { prenorm: false } }, dtype: common.DType.F32 },
  { kind: { $case: 'patchTokens', value: { prenorm: false } }, dtype: common.DType.F16 },
];

/** Preprocessed slices 0..n-1 whose pixels are one byte: the index, or `changed[index]`. */
async function* study(
  n: number,
  changed: Record<number, number> = {},
): AsyncGenerator<preprocess.PreprocessedSlice> {
  for (let i = 0; i < n; i++) {
    await new Promise((r) => setTimeout(r, 1));
    yield {
      mapping: { canonicalIndex: i, inputSliceIndex: n - 1 - i, inputAxis: 2 },
      pixels: { dtype: common.DType.U8, shape: [1, 1, 1], data: Uint8Array.of(changed[i] ?? i) },
    };
  }
}

async function run(
  fake: FakeEmbed,
  slices: AsyncIterable<preprocess.PreprocessedSlice>,
  select: (i: number) => SliceRequest | undefined,
  extra: Partial<EmbedStudyOptions> = {},
) {
  const out: { index: number; cached: boolean; features: (number[] | undefined)[] }[] = [];
  for await (const e of embedStudy(slices, {
    client: fake.client,
    model,
    outputs,
    studyId: 't',
    select: (s) => select(s.mapping!.canonicalIndex),
    window: 2,
    attempts: 1,
    signal: new AbortController().signal,
    ...extra,
  })) {
    out.push({
      index: e.mapping.canonicalIndex,
      cached: e.cached,
      features: [0, 1].map((i) => (e.features[i] ? Array.from(e.features[i].data) : undefined)),
    });
  }
  return out;
}

describe('embedStudy', () => {
  it('embeds the selected slices in order, drops discarded outputs, and answers repeats from the cache', async () => {
    const fake = await startFakeEmbedServer();
    fakes.push(fake);
    const cache = new EmbeddingCache(1 << 20);
    const select = (i: number): SliceRequest | undefined =>
      i === 3 ? undefined : i === 2 ? { outputs: [0, 1], discard: new Set([1]) } : { outputs: [0, 1] };
    const first = await run(fake, study(6), select, { cache });
    expect(first.map((s) => s.index)).toEqual([0, 1, 2, 4, 5]);
    expect(first.every((s) => !s.cached)).toBe(true);
    expect(first[0]!.features).toEqual([
      [0, 0],
      [0, 1],
    ]);
    expect(first[2]!.features).toEqual([[2, 0], undefined]); // discarded: never returned
    expect(fake.seen.slices).toEqual([0, 1, 2, 4, 5]);

    // The repeat opens no stream at all, except for slice 2 whose output 1 was never cached.
    const cls = (i: number): SliceRequest | undefined =>
      i === 3 ? undefined : { outputs: i === 2 ? [0, 1] : [0] };
    const second = await run(fake, study(6), cls, { cache });
    expect(second.map((s) => [s.index, s.cached])).toEqual([
      [0, true],
      [1, true],
      [2, false],
      [4, true],
      [5, true],
    ]);
    expect(second[1]!.features[0]).toEqual([1, 0]);
    expect(fake.seen.streams).toBe(2);
    expect(fake.seen.slices).toEqual([0, 1, 2, 4, 5, 2]);

    // Different pixels are a different slice: a miss, returned in its place between hits.
    const third = await run(
      fake,
      study(6, { 4: 40 }),
      (i) => (i === 3 || i === 2 ? undefined : { outputs: [0] }),
      {
        cache,
      },
    );
    expect(third.map((s) => [s.index, s.cached])).toEqual([
      [0, true],
      [1, true],
      [4, false],
      [5, true],
    ]);
    expect(fake.seen.slices.slice(6)).toEqual([4]);
  });

  it('opens no Embed stream when every slice is cached, and caches nothing when the budget is 0', async () => {
    const fake = await startFakeEmbedServer();
    fakes.push(fake);
    const all = (): SliceRequest => ({ outputs: [0] });
    const off = new EmbeddingCache(0);
    await run(fake, study(3), all, { cache: off });
    await run(fake, study(3), all, { cache: off });
    expect(fake.seen.streams).toBe(2);
    const cache = new EmbeddingCache(1 << 20);
    await run(fake, study(3), all, { cache });
    const again = await run(fake, study(3), all, { cache });
    expect(again.every((s) => s.cached)).toBe(true);
    expect(fake.seen.streams).toBe(3);
  });
});
