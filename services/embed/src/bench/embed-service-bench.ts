/**
 * Embed service throughput against the raw engine, same run, same machine (after `npm run build`):
 *
 *     node services/embed/dist/bench/embed-service-bench.js [--quick] [--no-curia-b] [--no-ab]
 *
 * (a) raw EmbedEngine slices/s at batch 1 and 8 on the default demo bundle; (b) the service over gRPC
 * (server in this process on port 0) with 8 concurrent streaming clients, in short rounds each paired
 * with a raw batch-8 measurement taken just before it (the median per-round ratio is printed, so
 * load drift on a shared machine cancels), with p50/p99 per-slice latency — with the engine on its
 * thread (the default) and, as a same-run A/B unless `--no-ab`, on the event loop; (c) a random curia-b bundle at batch 1 (built
 * once into `<cache>/bench/curia-b-demo`); (d) unless `--no-int8`: raw engine INT8 vs F32 (the
 * INT8 derivative of the same weights, `<cache>/bench/<preset>-demo-int8`), batch 1 and 8, demo
 * and curia-b (unless `--no-curia-b`), interleaved rounds, with the host's INT8 CPU features.
 */

import { createCuriaChannel, createCuriaClient } from '@curia/client';
import { CuriaServer, loadConfig } from '@curia/kit';
import {
  describeInt8CpuFeatures,
  EmbedEngine,
  ensureBenchBundle,
  ensureDefaultBundle,
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

/** One engine opened once; `rate(batch, millis)` measures back-to-back runs of that batch. */
/** CPU time of this process (all threads: event loop, ORT pool, engine thread), ms. */
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** CPU ms per slice of each raw batch-8 measurement (load-independent, unlike slices/s). */
const cpuPerSlice = { raw: [] as number[] };

async function openRaw(
  dir: string,
): Promise<{ rate: (batch: number, millis: number) => Promise<number>; close: () => Promise<void> }> {
  const engine = await EmbedEngine.open(dir, { verifySha256: false, maxBatch: 64 });
  return {
    rate: async (batch, millis) => {
      const px = noise(batch, batch);
      await engine.run(px, batch);
      let runs = 0;
      const t0 = performance.now();
      const c0 = cpuMs();
      while (runs < 2 || performance.now() - t0 < millis) {
        await engine.run(px, batch);
        runs++;
      }
      if (batch === 8) cpuPerSlice.raw.push((cpuMs() - c0) / (runs * batch));
      return (runs * batch * 1000) / (performance.now() - t0);
    },
    close: () => engine.close(),
  };
}

async function rawThroughput(dir: string, batch: number, millis: number): Promise<number> {
  const raw = await openRaw(dir);
  try {
    return await raw.rate(batch, millis);
  } finally {
    await raw.close();
  }
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

interface RoundResult {
  slicesPerSec: number;
  /** Process CPU ms per slice: server, client (same process) and ORT threads. */
  cpuMsPerSlice: number;
  latencies: number[];
  batchSizes: number[];
}

/** An Embed server on 127.0.0.1:0 (in this process) plus a client; `round` runs concurrent streams. */
async function startService(
  dir: string,
  engineThread: boolean,
): Promise<{
  round: (clients: number, slicesPerClient: number) => Promise<RoundResult>;
  close: () => Promise<void>;
}> {
  const env = loadConfig(embedEnvSchema, {
    CURIA_GRPC_HOST: '127.0.0.1',
    CURIA_LOG_LEVEL: 'warn',
    CURIA_PROCESS_METRICS: 'false',
    CURIA_EMBED_MODELS: dir,
    // 8 streams × 8 in flight = the default 64-slice queue: measure throughput, not shedding.
    CURIA_EMBED_MAX_INFLIGHT_PER_STREAM: '8',
    CURIA_EMBED_ENGINE_THREAD: String(engineThread),
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
  const one = async (c: number, slicesPerClient: number, out: RoundResult): Promise<void> => {
    const sentAt = new Map<number, number>();
    async function* reqs(): AsyncGenerator<embed.EmbedRequest> {
      await Promise.resolve();
      yield {
        msg: {
          $case: 'start',
          value: {
            model: '',
            studyId: `bench-${c}`,
            outputs: [{ kind: { $case: 'cls', value: { prenorm: false } }, dtype: common.DType.F32 }],
          },
        },
      };
      for (let i = 0; i < slicesPerClient; i++) {
        sentAt.set(i, performance.now());
        yield { msg: { $case: 'slice', value: { sliceId: i, pixels } } };
      }
    }
    for await (const m of client.embed(reqs())) {
      if (m.msg?.$case === 'result') out.latencies.push(performance.now() - sentAt.get(m.msg.value.sliceId)!);
      else if (m.msg?.$case === 'done') out.batchSizes.push(...m.msg.value.batchSizes);
    }
  };
  await one(-1, 2, { slicesPerSec: 0, cpuMsPerSlice: 0, latencies: [], batchSizes: [] }); // connection + first-call warm-up
  return {
    round: async (clients, slicesPerClient) => {
      const r: RoundResult = { slicesPerSec: 0, cpuMsPerSlice: 0, latencies: [], batchSizes: [] };
      const t0 = performance.now();
      const c0 = cpuMs();
      await Promise.all(Array.from({ length: clients }, (_, c) => one(c, slicesPerClient, r)));
      r.slicesPerSec = (clients * slicesPerClient * 1000) / (performance.now() - t0);
      r.cpuMsPerSlice = (cpuMs() - c0) / (clients * slicesPerClient);
      return r;
    },
    close: async () => {
      channel.close();
      await server.shutdown();
      await hooks.close();
    },
  };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * (d) Raw engine INT8 vs F32 of the same weights: per preset and batch, both engines open at once,
 * measured in alternating rounds (load drift hits both), median slices/s and CPU ms per slice.
 */
async function int8VsF32(presets: readonly ('demo' | 'curia-b')[]): Promise<void> {
  console.log(`(d) host CPU INT8 features — ${describeInt8CpuFeatures()}`);
  for (const preset of presets) {
    const t0 = performance.now();
    const dirs = [
      await ensureBenchBundle(preset),
      await ensureBenchBundle(preset, undefined, { quantize: 'int8' }),
    ];
    console.log(
      `(d) ${preset} F32 and INT8 bundles ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    const engines = await Promise.all(
      dirs.map((d) => EmbedEngine.open(d, { verifySha256: false, maxBatch: 64 })),
    );
    try {
      for (const batch of [1, 8]) {
        const px = noise(batch, batch);
        for (const e of engines) await e.run(px, batch);
        const rates: number[][] = [[], []];
        const cpu: number[][] = [[], []];
        const rounds = preset === 'curia-b' ? 2 : quick ? 2 : 4;
        const millis = preset === 'curia-b' ? 1 : quick ? 1000 : 2000;
        for (let r = 0; r < rounds; r++) {
          for (const i of r % 2 === 0 ? [0, 1] : [1, 0]) {
            let runs = 0;
            const c0 = cpuMs();
            const w0 = performance.now();
            while (runs < 1 || performance.now() - w0 < millis) {
              await engines[i]!.run(px, batch);
              runs++;
            }
            rates[i]!.push((runs * batch * 1000) / (performance.now() - w0));
            cpu[i]!.push((cpuMs() - c0) / (runs * batch));
          }
        }
        const [f32, int8] = [median(rates[0]!), median(rates[1]!)];
        const [cf, ci] = [median(cpu[0]!), median(cpu[1]!)];
        console.log(
          `(d) ${preset} batch ${batch}: F32 ${f32.toFixed(2)} slices/s (cpu ${cf.toFixed(0)} ms/slice), INT8 ${int8.toFixed(2)} slices/s (cpu ${ci.toFixed(0)} ms/slice): ` +
            `INT8 ×${(int8 / f32).toFixed(2)} throughput, ×${(cf / ci).toFixed(2)} less CPU per slice (median of ${rounds} alternating rounds)`,
        );
      }
    } finally {
      await Promise.all(engines.map((e) => e.close()));
    }
  }
}

async function main(): Promise<void> {
  if (args.has('--int8-only')) {
    await int8VsF32(args.has('--no-curia-b') ? ['demo'] : ['demo', 'curia-b']);
    return;
  }
  const demo = await ensureDefaultBundle();
  const millis = quick ? 1500 : 3000;
  const raw = await openRaw(demo);
  const raw1 = await raw.rate(1, millis);
  console.log(`(a) raw demo engine: batch 1 ${raw1.toFixed(2)} slices/s`);
  // On a shared machine the load drifts within seconds, so the service is measured in short rounds,
  // each paired with a raw batch-8 measurement taken right before it (modes alternate their order
  // across rounds); the reported ratio is the median of the per-round ratios. Modes: the engine on
  // its own thread (the default) and, as a same-run A/B unless --no-ab, on the event loop
  // (CURIA_EMBED_ENGINE_THREAD=false).
  const modes: [string, boolean][] = [['engine thread', true]];
  if (!args.has('--no-ab')) modes.push(['engine on the event loop', false]);
  const services = await Promise.all(modes.map(async ([, t]) => startService(demo, t)));
  const rounds = quick ? 2 : 4;
  const perClient = quick ? 4 : 8;
  const raws: number[] = [];
  const per = modes.map(() => ({
    ratios: [] as number[],
    rates: [] as number[],
    cpu: [] as number[],
    latencies: [] as number[],
    batches: [] as number[],
  }));
  try {
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? modes.map((_, i) => i) : modes.map((_, i) => modes.length - 1 - i);
      for (const i of order) {
        const base = await raw.rate(8, millis);
        raws.push(base);
        const res = await services[i]!.round(8, perClient);
        const acc = per[i]!;
        acc.ratios.push(res.slicesPerSec / base);
        acc.rates.push(res.slicesPerSec);
        acc.cpu.push(res.cpuMsPerSlice);
        acc.latencies.push(...res.latencies);
        acc.batches.push(...res.batchSizes);
      }
    }
  } finally {
    await Promise.all(services.map((s) => s.close()));
    await raw.close();
  }
  console.log(
    `(a) raw demo engine batch 8, per round: ${raws.map((x) => x.toFixed(2)).join(', ')} slices/s (median ${median(raws).toFixed(2)})`,
  );
  modes.forEach(([label], i) => {
    const acc = per[i]!;
    const lat = acc.latencies.sort((a, b) => a - b);
    const meanBatch = acc.batches.reduce((a, b) => a + b, 0) / Math.max(1, acc.batches.length);
    console.log(
      `(b) service, 8 concurrent streams, ${label}: ${median(acc.rates).toFixed(2)} slices/s (median of ${rounds} rounds); ` +
        `×${median(acc.ratios).toFixed(2)} of raw batch 8 (median of per-round ratios ${acc.ratios.map((x) => x.toFixed(2)).join(', ')}); ` +
        `×${(median(acc.rates) / raw1).toFixed(2)} of raw batch 1; mean batch ${meanBatch.toFixed(1)}; ` +
        `per-slice latency p50 ${percentile(lat, 0.5).toFixed(0)} ms, p99 ${percentile(lat, 0.99).toFixed(0)} ms`,
    );
    // Load-independent view: CPU per slice of the whole process (ORT threads + server + the
    // in-process clients) against raw batch 8. When the cores are saturated, throughput scales with
    // its inverse, so raw/service CPU bounds the service/raw ratio a quiet machine can reach.
    const rawCpu = median(cpuPerSlice.raw);
    const svcCpu = median(acc.cpu);
    console.log(
      `    CPU per slice: raw batch 8 ${rawCpu.toFixed(1)} ms, service ${svcCpu.toFixed(1)} ms (incl. clients) -> CPU-bound ceiling ×${(rawCpu / svcCpu).toFixed(2)}`,
    );
  });
  if (!args.has('--no-curia-b')) {
    const t0 = performance.now();
    const b = await ensureBenchBundle('curia-b');
    console.log(`(c) curia-b bundle ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const b1 = await rawThroughput(b, 1, quick ? 3000 : 6000);
    console.log(
      `(c) curia-b (768×12) batch 1: ${b1.toFixed(2)} slices/s (${(1000 / b1).toFixed(0)} ms/slice), ×${(b1 / raw1).toFixed(3)} of demo batch 1`,
    );
  }
  if (!args.has('--no-int8')) await int8VsF32(args.has('--no-curia-b') ? ['demo'] : ['demo', 'curia-b']);
}

await main();
