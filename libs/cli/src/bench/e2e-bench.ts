/**
 * End-to-end benchmark: a 512×512×120 synthetic CT (the phantom) analysed through the gateway of a
 * spawned local cluster (one replica per stage, embedding cache off so every run computes) versus
 * the same stages called in-process in this Node process (open + preprocess + embed in batches of
 * the service's max batch + the head), measured in the same run. Prints per-stage times and the
 * ratio gateway / in-process (target: overhead ≤ 15%, i.e. ratio ≤ 1.15).
 *
 * The in-process baseline runs with the services' Node flags (`npm run bench:e2e` passes them), so
 * both sides get the same heap sizing.
 *
 * Run: npm run bench:e2e [-- --runs 3 --slices 120]
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { common, type AnalysisResult, type AnalyzeStudyStartFields } from '@curia/client';
import { loadHead } from '@curia/heads';
import { generatePhantom, phantomToNifti } from '@curia/phantom';
import { openVolume, preprocessSlices } from '@curia/volume';

import { GatewayCluster } from '../e2e/gateway-cluster.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const RUNS = arg('--runs', 3);
const SLICES = arg('--slices', 120);
const MAX_BATCH = 8;
const CLS: common.FeatureRequest = {
  kind: { $case: 'cls', value: { prenorm: false } },
  dtype: common.DType.F32,
};
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** CPU seconds (user + system, every thread) a process has used so far; NaN off Linux. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ ticks
  } catch {
    return Number.NaN;
  }
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'curia-bench-e2e-'));
  const phantom = generatePhantom({ size: [512, 512, SLICES], seed: 3 });
  const path = join(work, 'phantom.nii.gz');
  await writeFile(path, phantomToNifti(phantom, { gzip: true }).image);
  const gw = await GatewayCluster.start(
    'bench',
    {
      ports: 'dynamic',
      only: ['preprocess', 'embed', 'heads', 'gateway'],
      env: {
        CURIA_HEADS_DIR: join(work, 'heads'),
        CURIA_GATEWAY_CACHE_MAX_BYTES: '0',
        CURIA_LOG_LEVEL: 'warn',
      },
    },
    common.VolumeFormat.NIFTI,
  );
  const { cluster, engine } = gw;
  try {
    const analyse = (fields: AnalyzeStudyStartFields): Promise<AnalysisResult> =>
      gw.analyse(path, fields, { deadlineMs: 1_200_000 });
    // Warm-up run, whose CLS features train the head both paths run.
    const warm = await analyse({ embeddingOutputs: [CLS] });
    const model = `${warm.summary!.model!.name}@${warm.summary!.model!.version}`;
    const fitted = await gw.fitClassifier({
      head: 'bench-half',
      model,
      feature: CLS,
      labelNames: ['inferior', 'superior'],
      samples: warm.embeddings.map((e) => ({
        features: e.features[0]!.tensor,
        classIndex: e.mapping!.canonicalIndex < SLICES / 2 ? 0 : 1,
      })),
    });
    const ref = `${fitted.head!.name}@${fitted.head!.version}`;
    const head = await loadHead(join(work, 'heads', 'bench-half', fitted.head!.version));
    const hidden = engine.info().hidden;

    const local: Record<string, number>[] = [];
    const remote: Record<string, number>[] = [];
    for (let run = 0; run < RUNS; run++) {
      // In-process: the same stages, sequential, in one Node process.
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const volume = await openVolume({ kind: 'path', path });
      const batch = new Float32Array(MAX_BATCH * engine.info().imageSize ** 2);
      const cls = new Float32Array(volume.sliceCount * hidden);
      let inBatch = 0;
      let done = 0;
      let tPre = 0;
      let tEmbed = 0;
      let mark = performance.now();
      const flush = async (): Promise<void> => {
        tPre += performance.now() - mark;
        const t = performance.now();
        const r = await engine.run(batch.subarray(0, inBatch * engine.info().imageSize ** 2), inBatch);
        for (let i = 0; i < inBatch; i++) {
          cls.set(
            r.lastHiddenState!.subarray(i * r.tokens * hidden, i * r.tokens * hidden + hidden),
            (done + i) * hidden,
          );
        }
        done += inBatch;
        inBatch = 0;
        tEmbed += performance.now() - t;
        mark = performance.now();
      };
      for await (const s of preprocessSlices(volume)) {
        batch.set(s.pixels, inBatch * s.pixels.length);
        if (++inBatch === MAX_BATCH) await flush();
      }
      if (inBatch > 0) await flush();
      const tH = performance.now();
      await head.run({ slices: done, hidden, blocks: [{ data: cls, tokensPerSlice: 1 }] });
      const tHeads = performance.now() - tH;
      const cpu = process.cpuUsage(cpu0);
      local.push({
        preprocess: tPre,
        embed: tEmbed,
        heads: tHeads,
        total: performance.now() - t0,
        cpu: (cpu.user + cpu.system) / 1000,
      });

      const pids = cluster.endpoints().map((e) => [e.service, e.pid] as const);
      const before = pids.map(([, pid]) => cpuSeconds(pid));
      const c1 = process.cpuUsage();
      const t1 = performance.now();
      const r = await analyse({ heads: [ref] });
      const wall = performance.now() - t1;
      const client = process.cpuUsage(c1);
      const stages = Object.fromEntries((r.summary?.timings ?? []).map((t) => [t.stage, t.millis]));
      const cpuBy = Object.fromEntries(
        pids.map(([svc, pid], i) => [`cpu:${svc}`, (cpuSeconds(pid) - before[i]!) * 1000]),
      );
      const serviceCpu = Object.values(cpuBy).reduce((a, b) => a + b, 0);
      remote.push({
        ...stages,
        ...cpuBy,
        'cpu:client': (client.user + client.system) / 1000,
        cpu: serviceCpu + (client.user + client.system) / 1000,
        total: wall,
      });
      if (r.summary?.cache?.misses !== SLICES)
        throw new Error('the cache answered: the benchmark must compute');
    }
    const med = (rows: Record<string, number>[], k: string): number => median(rows.map((r) => r[k] ?? NaN));
    const fmt = (ms: number): string =>
      Number.isFinite(ms) ? `${ms.toFixed(0).padStart(7)} ms` : '       -  ';
    process.stdout.write(
      `bench:e2e — phantom 512×512×${SLICES}, ${RUNS} runs (median), model ${model} on CPU, cache off\n`,
    );
    process.stdout.write(
      'stage        in-process    gateway (server-side stage wall time; stages overlap)\n',
    );
    for (const k of ['upload', 'preprocess', 'embed', 'heads']) {
      process.stdout.write(`${k.padEnd(12)} ${fmt(med(local, k))}  ${fmt(med(remote, k))}\n`);
    }
    process.stdout.write('CPU time     in-process    gateway path, per process (all threads)\n');
    for (const k of ['preprocess', 'embed', 'heads', 'gateway', 'client']) {
      const v = med(remote, `cpu:${k}`);
      if (Number.isFinite(v)) process.stdout.write(`  ${k.padEnd(10)}               ${fmt(v)}\n`);
    }
    process.stdout.write(
      `  total      ${fmt(med(local, 'cpu'))}  ${fmt(med(remote, 'cpu'))} (×${(med(remote, 'cpu') / med(local, 'cpu')).toFixed(2)})\n`,
    );
    const ratio = med(remote, 'total') / med(local, 'total');
    process.stdout.write(
      `total        ${fmt(med(local, 'total'))}  ${fmt(med(remote, 'total'))} (client wall time)\n` +
        `ratio gateway / in-process = ${ratio.toFixed(3)} (overhead ${((ratio - 1) * 100).toFixed(1)}%; target ≤ 15%)\n` +
        `slices/s: in-process ${((SLICES * 1000) / med(local, 'total')).toFixed(2)}, gateway ${((SLICES * 1000) / med(remote, 'total')).toFixed(2)}\n`,
    );
  } finally {
    await gw.close();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
