import { afterEach, describe, expect, it } from 'vitest';

import { common } from '@curia/proto';

import { embedSlices, type EmbedStreamOptions, type SliceToEmbed } from './embed-stream.js';
import { startFakeEmbedServer, type Admission, type FakeEmbed } from './testing/fake-embed.js';

const fakes: FakeEmbed[] = [];
afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

async function startFakeEmbed(failAfter: number, admission: Admission = 'headers'): Promise<FakeEmbed> {
  const f = await startFakeEmbedServer({ failAfter, admission });
  fakes.push(f);
  return f;
}

async function* slices(n: number): AsyncGenerator<SliceToEmbed> {
  for (let i = 0; i < n; i++) {
    await new Promise((r) => setTimeout(r, 1));
    yield { id: i, pixels: { dtype: common.DType.F32, shape: [1], data: new Uint8Array(4) } };
  }
}

type Client = FakeEmbed['client'];

/** Embeds `n` slices with default stream options (plus `opts`); resolves with the slice ids in answer order. */
async function embedAll(client: Client, n: number, opts: Partial<EmbedStreamOptions>): Promise<number[]> {
  const out: number[] = [];
  for await (const r of embedSlices(client, slices(n), {
    start: { model: '', outputs: [], studyId: 't' },
    window: 2,
    attempts: 1,
    signal: new AbortController().signal,
    ...opts,
  })) {
    expect(r.features[0]!.tensor!.data[0]).toBe(r.slice.id);
    out.push(r.slice.id);
  }
  return out;
}

describe('embedSlices', () => {
  it('re-sends unanswered slices on a new stream after UNAVAILABLE: every slice once, in order', async () => {
    const { client, seen } = await startFakeEmbed(5);
    const retries: number[] = [];
    const out = await embedAll(client, 20, { window: 4, attempts: 3, onRetry: (a) => retries.push(a) });
    expect(out).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(retries).toEqual([1]);
    expect(seen.streams).toBe(2);
    expect(seen.maxUnanswered).toBeLessThanOrEqual(4);
  });

  it('gives up with UNAVAILABLE once the attempts are spent', async () => {
    const { client } = await startFakeEmbed(0);
    await expect(embedAll(client, 3, {})).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: /embed: replica going away/,
    });
  });

  it('sends no slice into a stream the replica refuses at start', async () => {
    const { client, seen } = await startFakeEmbed(0, 'refuse');
    await expect(embedAll(client, 3, { window: 3 })).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    expect(seen.streams).toBe(1);
    expect(seen.slices).toEqual([]);
  });

  it('still serves through a replica that sends no admission headers, after admissionWaitMs', async () => {
    const { client, seen } = await startFakeEmbed(Infinity, 'silent');
    expect(await embedAll(client, 3, { window: 3, admissionWaitMs: 200 })).toEqual([0, 1, 2]);
    expect(seen.startToFirstSliceMs[0]).toBeGreaterThanOrEqual(150);
  });

  it('opens no stream for an empty source', async () => {
    const { client, seen } = await startFakeEmbed(0);
    const it = embedSlices(client, slices(0), {
      start: { model: '', outputs: [], studyId: 't' },
      window: 2,
      attempts: 1,
      signal: new AbortController().signal,
    });
    expect((await it.next()).done).toBe(true);
    expect(seen.streams).toBe(0);
  });
});
