import { setTimeout as delay } from 'node:timers/promises';

import { afterEach, describe, expect, it } from 'vitest';

import { createCuriaChannel, createCuriaClient, type Channel } from '@curia/client';
import { CuriaError } from '@curia/errors';
import { CuriaServer, loadConfig, serviceEnvSchema } from '@curia/kit';
import { common, embed } from '@curia/proto';

import { embedSlices, type EmbedStreamOptions, type SliceToEmbed } from './embed-stream.js';

const servers: CuriaServer[] = [];
const channels: Channel[] = [];
afterEach(async () => {
  for (const c of channels.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.shutdown()));
});

/** How the fake replica answers a stream's `start`. */
type Admission = 'headers' | 'silent' | 'refuse';

/**
 * A real EmbedService on port 0 whose "features" are the slice id; its first stream dies with
 * UNAVAILABLE after `failAfter` results (as a killed replica's would). On `start` it admits the
 * stream with response headers like the real service, or sends none (an older build), or refuses
 * it with RESOURCE_EXHAUSTED (queue full).
 */
async function startFakeEmbed(failAfter: number, admission: Admission = 'headers') {
  const server = new CuriaServer({
    name: 'embed',
    env: loadConfig(serviceEnvSchema, {
      CURIA_GRPC_HOST: '127.0.0.1',
      CURIA_LOG_LEVEL: 'silent',
      CURIA_PROCESS_METRICS: 'false',
    }),
  });
  const seen = { streams: 0, slices: [] as number[], maxUnanswered: 0, startToFirstSliceMs: [] as number[] };
  server.add(embed.EmbedServiceDefinition, {
    getInfo: () => Promise.resolve({}),
    listModels: () => Promise.resolve({ models: [] }),
    embed: async function* (requests, context) {
      const stream = ++seen.streams;
      if (admission === 'refuse') {
        // Refuses 200 ms after `start`, recording what the client sent meanwhile.
        const it = requests[Symbol.asyncIterator]();
        await it.next();
        const until = performance.now() + 200;
        for (let left = 200; left > 0; left = until - performance.now()) {
          const next = await Promise.race([it.next(), delay(left).then(() => null)]);
          if (!next || next.done) break;
          if (next.value.msg?.$case === 'slice') seen.slices.push(next.value.msg.value.sliceId);
        }
        throw new CuriaError('RESOURCE_EXHAUSTED', 'inference queue is full');
      }
      let answered = 0;
      let received = 0;
      let startedAt = 0;
      for await (const r of requests) {
        if (r.msg?.$case === 'start') {
          startedAt = performance.now();
          if (admission === 'headers') {
            context.header.set('curia-model', 'fake@1');
            context.sendHeader();
          }
        }
        if (r.msg?.$case !== 'slice') continue;
        if (received === 0) seen.startToFirstSliceMs.push(performance.now() - startedAt);
        received++;
        seen.maxUnanswered = Math.max(seen.maxUnanswered, received - answered);
        seen.slices.push(r.msg.value.sliceId);
        if (stream === 1 && answered === failAfter) throw new CuriaError('UNAVAILABLE', 'replica going away');
        answered++;
        const id = r.msg.value.sliceId;
        yield {
          msg: {
            $case: 'result',
            value: {
              sliceId: id,
              features: [
                { requestIndex: 0, tensor: { dtype: common.DType.U8, shape: [1], data: Uint8Array.of(id) } },
              ],
            },
          },
        };
      }
      yield { msg: { $case: 'done', value: { slices: answered, batchSizes: [], timings: [] } } };
    },
  });
  const ports = await server.start();
  server.setServing(true);
  servers.push(server);
  const channel = createCuriaChannel(`127.0.0.1:${ports.grpcPort}`);
  channels.push(channel);
  return { client: createCuriaClient(embed.EmbedServiceDefinition, channel), seen };
}

async function* slices(n: number): AsyncGenerator<SliceToEmbed> {
  for (let i = 0; i < n; i++) {
    await new Promise((r) => setTimeout(r, 1));
    yield { id: i, pixels: { dtype: common.DType.F32, shape: [1], data: new Uint8Array(4) } };
  }
}

type Client = Awaited<ReturnType<typeof startFakeEmbed>>['client'];

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
