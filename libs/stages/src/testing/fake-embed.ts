import { setTimeout as delay } from 'node:timers/promises';

import { createCuriaChannel, createCuriaClient } from '@curia/client';
import { CuriaError } from '@curia/errors';
import { CuriaServer, loadConfig, serviceEnvSchema } from '@curia/kit';
import { common, embed } from '@curia/proto';

/** How the fake replica answers a stream's `start`. */
export type Admission = 'headers' | 'silent' | 'refuse';

/** Options of {@link startFakeEmbedServer}. */
export interface FakeEmbedOptions {
  /** The first stream dies with UNAVAILABLE after this many results (as a killed replica's would). */
  readonly failAfter?: number;
  /** Admits a stream with response headers like the real service, sends none, or refuses it. */
  readonly admission?: Admission;
  /** What ListModels answers. */
  readonly models?: readonly common.ModelInfo[];
}

/** What the fake saw. */
export interface FakeEmbedLog {
  streams: number;
  slices: number[];
  maxUnanswered: number;
  startToFirstSliceMs: number[];
}

/** A running fake Embed replica and a client of it. */
export interface FakeEmbed {
  readonly client: ReturnType<typeof createCuriaClient<typeof embed.EmbedServiceDefinition>>;
  readonly seen: FakeEmbedLog;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A real EmbedService on port 0 whose "features" are U8 tensors [slice id, output position], one
 * per requested output (at least one). A refusing replica answers RESOURCE_EXHAUSTED 200 ms after
 * `start`, recording the slices the client sent meanwhile.
 */
export async function startFakeEmbedServer(o: FakeEmbedOptions = {}): Promise<FakeEmbed> {
  const failAfter = o.failAfter ?? Infinity;
  const admission = o.admission ?? 'headers';
  const server = new CuriaServer({
    name: 'embed',
    env: loadConfig(serviceEnvSchema, {
      CURIA_GRPC_HOST: '127.0.0.1',
      CURIA_LOG_LEVEL: 'silent',
      CURIA_PROCESS_METRICS: 'false',
    }),
  });
  const seen: FakeEmbedLog = { streams: 0, slices: [], maxUnanswered: 0, startToFirstSliceMs: [] };
  server.add(embed.EmbedServiceDefinition, {
    getInfo: () => Promise.resolve({}),
    listModels: () => Promise.resolve({ models: [...(o.models ?? [])] }),
    embed: async function* (requests, context) {
      const stream = ++seen.streams;
      if (admission === 'refuse') {
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
      let outputs = 1;
      for await (const r of requests) {
        if (r.msg?.$case === 'start') {
          startedAt = performance.now();
          outputs = Math.max(1, r.msg.value.outputs.length);
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
              features: Array.from({ length: outputs }, (_, requestIndex) => ({
                requestIndex,
                tensor: { dtype: common.DType.U8, shape: [2], data: Uint8Array.of(id, requestIndex) },
              })),
            },
          },
        };
      }
      yield { msg: { $case: 'done', value: { slices: answered, batchSizes: [], timings: [] } } };
    },
  });
  const ports = await server.start();
  server.setServing(true);
  const channel = createCuriaChannel(`127.0.0.1:${ports.grpcPort}`);
  return {
    client: createCuriaClient(embed.EmbedServiceDefinition, channel),
    seen,
    port: ports.grpcPort,
    close: async () => {
      channel.close();
      await server.shutdown();
    },
  };
}
