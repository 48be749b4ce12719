/**
 * Raw backbone throughput on this machine (run after `npm run build`):
 *
 *     node libs/model/dist/bench/embed-raw-bench.js [--quick] [--no-curia-b]
 *
 * Measures ORT session throughput (slices/s) of the default demo bundle at batch 1 and 8 under
 * several session-option variants (interleaved rounds, best round kept), each printed as a ratio
 * against the `all`-optimised baseline measured in the same run. The default graph uses ORT's
 * contrib MultiHeadAttention; one variant runs the same weights with attention as plain
 * MatMul/Softmax ops. Then a random curia-b (ViT-B) bundle at batch 1, for the record. Bundles are
 * built into the Curia cache (`$CURIA_CACHE_DIR` or ~/.cache/curia), never into the repository.
 */
import { rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

import { buildRandomBundle, type RandomBundleOptions } from '../bundle/build.js';
import { defaultCacheRoot, ensureDefaultBundle } from '../bundle/default-bundle.js';
import { loadBundle } from '../bundle/load.js';
import { BUILDER_VERSION } from '../bundle/manifest.js';
import { EmbedEngine, type EngineOptions } from '../engine.js';
import { DEFAULT_ATTENTION } from '../onnx/dinov2-graph.js';
import { mulberry32 } from '../random-weights.js';

const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
const rounds = quick ? 2 : 5;
const roundMillis = quick ? 400 : 700;

function pixels(batch: number, seed: number): Float32Array {
  const u = mulberry32(seed);
  const px = new Float32Array(batch * 512 * 512);
  for (let i = 0; i < px.length; i++) px[i] = u() * 4 - 2;
  return px;
}

/** Wall-clock throughput and process CPU time (all ORT threads) per slice of one round. */
interface Sample {
  readonly slicesPerSec: number;
  readonly cpuMsPerSlice: number;
}

/** Runs `engine` repeatedly for at least `millis`. */
async function timeRuns(
  engine: EmbedEngine,
  px: Float32Array,
  batch: number,
  millis: number,
): Promise<Sample> {
  let runs = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  while (runs < 2 || performance.now() - t0 < millis) {
    await engine.run(px, batch);
    runs++;
  }
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return {
    slicesPerSec: (runs * batch * 1000) / wall,
    cpuMsPerSlice: (cpu.user + cpu.system) / 1000 / (runs * batch),
  };
}

/**
 * Throughput of each variant at `batch`. The machine is shared, so variants are interleaved over
 * several rounds and each keeps its best round (highest throughput, lowest CPU time): a burst of
 * outside load then hurts one round of every variant rather than all rounds of one. CPU time is
 * the steadier figure under contention.
 */
async function measureVariants(
  variants: readonly (readonly [string, string, EngineOptions])[],
  batch: number,
): Promise<Sample[]> {
  const engines: EmbedEngine[] = [];
  try {
    for (const [, dir, opts] of variants)
      engines.push(await EmbedEngine.open(dir, { verifySha256: false, ...opts }));
    const px = pixels(batch, batch);
    for (const e of engines) await e.run(px, batch);
    const best: Sample[] = engines.map(() => ({ slicesPerSec: 0, cpuMsPerSlice: Infinity }));
    for (let round = 0; round < rounds; round++) {
      for (const [i, e] of engines.entries()) {
        const s = await timeRuns(e, px, batch, roundMillis);
        const b = best[i]!;
        best[i] = {
          slicesPerSec: Math.max(b.slicesPerSec, s.slicesPerSec),
          cpuMsPerSlice: Math.min(b.cpuMsPerSlice, s.cpuMsPerSlice),
        };
      }
    }
    return best;
  } finally {
    for (const e of engines) await e.close();
  }
}

/** A bench bundle cached under `<cache>/bench/<name>`, rebuilt when missing or built differently. */
async function cachedRandomBundle(name: string, opts: RandomBundleOptions): Promise<string> {
  const dir = join(defaultCacheRoot(), 'bench', name);
  const want = opts.attention ?? DEFAULT_ATTENTION;
  try {
    const { manifest } = await loadBundle(dir, { verifySha256: false });
    if (manifest.attention === want && manifest.provenance.builder_version === BUILDER_VERSION) return dir;
  } catch {
    // Missing or unreadable: rebuild below.
  }
  await rm(dir, { recursive: true, force: true });
  await buildRandomBundle(dir, opts);
  return dir;
}

async function main(): Promise<void> {
  const demo = await ensureDefaultBundle();
  const standardOps = await cachedRandomBundle('curia-demo-standard-attention', {
    preset: 'demo',
    seed: 0,
    attention: 'standard',
  });
  console.log(`cores ${availableParallelism()}, demo bundle ${demo}`);
  const variants: (readonly [string, string, EngineOptions])[] = [
    ['opt all (baseline)', demo, { graphOptimizationLevel: 'all' }],
    ['opt extended', demo, { graphOptimizationLevel: 'extended' }],
    ['opt basic', demo, { graphOptimizationLevel: 'basic' }],
    ['opt disabled', demo, { graphOptimizationLevel: 'disabled' }],
    ['opt all, no mem arena', demo, { enableCpuMemArena: false }],
    ['opt all, 1 intra-op thread', demo, { intraOpThreads: 1 }],
    ['opt all, standard-ops attention graph', standardOps, {}],
  ];
  for (const batch of [1, 8]) {
    const samples = await measureVariants(variants, batch);
    const base = samples[0]!;
    for (const [i, [label]] of variants.entries()) {
      const v = samples[i]!;
      console.log(
        `demo batch ${batch}  ${label.padEnd(40)} ${v.slicesPerSec.toFixed(2).padStart(6)} slices/s ×${(v.slicesPerSec / base.slicesPerSec).toFixed(2)}` +
          `  | cpu ${v.cpuMsPerSlice.toFixed(1).padStart(6)} ms/slice ×${(v.cpuMsPerSlice / base.cpuMsPerSlice).toFixed(2)}`,
      );
    }
  }
  if (!args.has('--no-curia-b')) {
    const t0 = performance.now();
    const curiaB = await cachedRandomBundle('curia-b-demo', { preset: 'curia-b', seed: 0 });
    console.log(`curia-b bundle ready in ${((performance.now() - t0) / 1000).toFixed(1)} s at ${curiaB}`);
    const [demoS, bS] = (await measureVariants(
      [
        ['demo', demo, {}],
        ['curia-b', curiaB, {}],
      ],
      1,
    )) as [Sample, Sample];
    const demo1 = demoS.slicesPerSec;
    const b1 = bS.slicesPerSec;
    console.log(
      `curia-b (ViT-B/16, 768×12) batch 1: ${b1.toFixed(2)} slices/s (${(1000 / b1).toFixed(0)} ms/slice, cpu ${bS.cpuMsPerSlice.toFixed(0)} ms/slice), ×${(b1 / demo1).toFixed(3)} of the demo bundle's ${demo1.toFixed(2)} slices/s`,
    );
  }
}

await main();
