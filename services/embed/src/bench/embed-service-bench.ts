/**
 * Embed service throughput against the raw engine, same run, same machine (after `npm run build`):
 *
 *     node services/embed/dist/bench/embed-service-bench.js [--quick] [--no-curia-b]
 *
 * (a) raw EmbedEngine slices/s at batch 1 and 8 on the default demo bundle; (b) the service over
 * gRPC (server in this process on port 0) with 8 concurrent streaming clients, printed as a ratio
 * of the raw batch-8 throughput, with p50/p99 per-slice latency; (c) a random curia-b bundle at
 * batch 1 (built once into `<cache>/bench/curia-b-demo`).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';

import { createCuriaChannel, createCuriaClient } from '@curia/client';
import { CuriaServer, loadConfig } from '@curia/kit';
import {
  buildRandomBundle,
  defaultCacheRoot,
  EmbedEngine,
  ensureDefaultBundle,
  loadBundle,
  mulberry32,
} from '@curia/model';
import { common, embed } from '@curia/proto';

import { embedEnvSchema } from '../config.js';
import { setupEmbedService } from '../service.js';

const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
const S = 512;

function noise(n: number, seed: number): Float32Array {
  const u = mulberry32(seed);
  const px = new Float32Array(n * S * S);
  for (let i = 0; i < px.length; i++) px[i] = u() * 4 - 2;
  return px;
}

async function rawThroughput(dir: string, batch: number, millis: number): Promise<number> {
  const engine = await EmbedEngine.open(dir, { verifySha256: false, maxBatch: 64 });
  try {
    const px = noise(batch, batch);
    await engine.run(px, batch);
    let runs = 0;
    const t0 = performance.now();
    while (runs < 2 || performance.now() - t0 < millis) {
      await engine.run(px, batch);
      runs++;
    }
    return (runs * batch * 1000) / (performance.now() - t0);
  } finally {
    await engine.close();
  }
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

async function serviceThroughput(
  dir: string,
  clients: number,
  slicesPerClient: number,
): Promise<{ slicesPerSec: number; latencies: number[]; meanBatch: number }> {
  const env = loadConfig(embedEnvSchema, {
    CURIA_GRPC_HOST: '127.0.0.1',
    CURIA_LOG_LEVEL: 'warn',
    CURIA_PROCESS_METRICS: 'false',
    CURIA_EMBED_MODELS: dir,
    // 8 streams × 8 in flight = the default 64-slice queue: measure throughput, not shedding.
    CURIA_EMBED_MAX_INFLIGHT_PER_STREAM: '8',
  });
  const server = new CuriaServer({ name: 'embed', env });
  const hooks = await setupEmbedService(server, env);
  const ports = await server.start();
  await hooks.warmUp();
  server.setServing(true);
  const channel = createCuriaChannel(`127.0.0.1:${ports.grpcPort}`);
  const client = createCuriaClient(embed.EmbedServiceDefinition, channel, { defaultDeadlineMs: 600_000 });
  const px = noise(1, 42);
  const pixels: common.Tensor = {
    dtype: common.DType.F32,
    shape: [1, S, S],
    data: new Uint8Array(px.buffer),
  };
  const latencies: number[] = [];
  const batchSizes: number[] = [];
  const one = async (c: number): Promise<void> => {
    const sentAt = new Map<number, number>();
    async function* reqs(): AsyncGenerator<embed.EmbedRequest> {
      await Promise.resolve();
      yield {
        msg: {
          $case: 'start',
          value: {
            model: '',
            studyId: `bench-${c}`,
            outputs: [{ kind: { $case: 'cls', value: {} }, dtype: common.DType.F32 }],
          },
        },
      };
      for (let i = 0; i < slicesPerClient; i++) {
        sentAt.set(i, performance.now());
        yield { msg: { $case: 'slice', value: { sliceId: i, pixels } } };
      }
    }
    for await (const m of client.embed(reqs())) {
      if (m.msg?.$case === 'result') latencies.push(performance.now() - sentAt.get(m.msg.value.sliceId)!);
      else if (m.msg?.$case === 'done') batchSizes.push(...m.msg.value.batchSizes);
    }
  };
  try {
    await one(-1); // connection + first-call warm-up
    latencies.length = 0;
    batchSizes.length = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: clients }, (_, c) => one(c)));
    const secs = (performance.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);
    const mean = batchSizes.length ? batchSizes.reduce((a, b) => a + b, 0) / batchSizes.length : 0;
    return { slicesPerSec: (clients * slicesPerClient) / secs, latencies, meanBatch: mean };
  } finally {
    channel.close();
    await server.shutdown();
    await hooks.close();
  }
}

async function curiaBBundle(): Promise<string> {
  const dir = join(defaultCacheRoot(), 'bench', 'curia-b-demo');
  try {
    await loadBundle(dir, { verifySha256: false });
    return dir;
  } catch {
    await rm(dir, { recursive: true, force: true });
    return (await buildRandomBundle(dir, { preset: 'curia-b', seed: 0 })).dir;
  }
}

async function main(): Promise<void> {
  const demo = await ensureDefaultBundle();
  const millis = quick ? 1500 : 4000;
  const raw1 = await rawThroughput(demo, 1, millis);
  const raw8 = await rawThroughput(demo, 8, millis);
  console.log(
    `(a) raw demo engine: batch 1 ${raw1.toFixed(2)} slices/s, batch 8 ${raw8.toFixed(2)} slices/s`,
  );
  const svc = await serviceThroughput(demo, 8, quick ? 8 : 24);
  console.log(
    `(b) service, 8 concurrent streams: ${svc.slicesPerSec.toFixed(2)} slices/s = ×${(svc.slicesPerSec / raw8).toFixed(2)} of raw batch 8 ` +
      `(×${(svc.slicesPerSec / raw1).toFixed(2)} of raw batch 1); mean batch ${svc.meanBatch.toFixed(1)}; ` +
      `per-slice latency p50 ${percentile(svc.latencies, 0.5).toFixed(0)} ms, p99 ${percentile(svc.latencies, 0.99).toFixed(0)} ms`,
  );
  if (!args.has('--no-curia-b')) {
    const t0 = performance.now();
    const b = await curiaBBundle();
    console.log(`(c) curia-b bundle ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const b1 = await rawThroughput(b, 1, quick ? 3000 : 6000);
    console.log(
      `(c) curia-b (768×12) batch 1: ${b1.toFixed(2)} slices/s (${(1000 / b1).toFixed(0)} ms/slice), ×${(b1 / raw1).toFixed(3)} of demo batch 1`,
    );
  }
}

await main();
