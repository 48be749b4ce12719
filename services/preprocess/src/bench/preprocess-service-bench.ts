/**
 * Preprocess service benchmark: slices/s of the engine in-process (open + preprocessSlices, the
 * baseline, measured in the same run) versus the full gRPC path through a PreprocessService on
 * 127.0.0.1:0, on the shared CT and on a generated 512x512x300 int16 CT written as NIfTI to a temp
 * file. Service modes: `streamed` (upload in 1 MiB chunks + decode + preprocess + transfer) and
 * `ref` (the server reads the file itself), each with the server in this process (client and
 * server share one event loop) and in a child process (as deployed: the service's node flags and
 * malloc settings, libs/kit/src/process-tuning.ts). Every mode, the in-thread engine (the
 * baseline) included, is measured in interleaved rounds and reported as its median; ratios are
 * mode/engine. Also prints the engine on the slice pool and, as a same-run A/B, a child server
 * computing slices on its event loop (CURIA_PREPROCESS_SLICE_THREADS=0).
 *
 * Run with `npm run bench:preprocess` (this process then has the same malloc settings as the
 * servers, so the baseline is not handicapped), or after `npm run build`:
 * node services/preprocess/dist/bench/preprocess-service-bench.js
 */
import { fork } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { createServer } from 'nice-grpc';

import { createCuriaChannel, createCuriaClient } from '@curia/client';
import { SERVICE_MALLOC_ENV, serviceNodeFlags, serviceProcessEnv } from '@curia/kit';

import type { preprocess } from '@curia/proto';
import { common } from '@curia/proto';
import { sharedDir } from '@curia/tensors';
import { openVolume, preprocessSlices, preprocessSlicesOnPool, SlicePool } from '@curia/volume';

import { chunkMessages, requestStream, startPreprocessServer } from '../testing/harness.js';
import { int16Nifti, syntheticCt } from '../testing/nifti.js';
import { PreprocessServiceBulkDefinition } from '@curia/proto';

/** Open + preprocess every slice in this thread (the baseline), or with the slice pool. */
async function engineRate(data: Uint8Array, pool?: SlicePool): Promise<number> {
  const t0 = performance.now();
  const volume = await openVolume({ kind: 'bytes', data });
  let n = 0;
  if (pool) {
    for await (const s of preprocessSlicesOnPool(volume, pool)) {
      if (s.data.length > 0) n++;
      s.release();
    }
  } else {
    for await (const s of preprocessSlices(volume)) if (s.pixels.length > 0) n++;
  }
  slicesSeen += n;
  return (n * 1000) / (performance.now() - t0);
}

type Source = { kind: 'streamed'; data: Uint8Array } | { kind: 'ref'; path: string };

function requests(src: Source, dtype = common.DType.F32): AsyncGenerator<preprocess.PreprocessRequest> {
  const start: preprocess.PreprocessRequest = {
    msg: {
      $case: 'start',
      value: {
        header: { studyId: 'bench', format: common.VolumeFormat.AUTO, seriesInstanceUid: '', volumeIndex: 0 },
        source:
          src.kind === 'ref'
            ? { $case: 'ref', value: { uri: pathToFileURL(src.path).href } }
            : { $case: 'streamed', value: { fileCount: 1, totalBytes: src.data.length } },
        options: { modelBundle: '', outputDtype: dtype },
      },
    },
  };
  const chunks =
    src.kind === 'ref' ? [] : [...chunkMessages([{ name: 'v.nii', data: src.data }], 1024 * 1024)];
  return requestStream([start, ...chunks]);
}

async function serviceRate(
  client: preprocess.PreprocessServiceClient,
  src: Source,
  dtype = common.DType.F32,
): Promise<number> {
  const t0 = performance.now();
  let n = 0;
  for await (const r of client.preprocess(requests(src, dtype))) {
    if (r.msg?.$case === 'slice') n++;
  }
  slicesSeen += n;
  return (n * 1000) / (performance.now() - t0);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Slices received or computed so far (for CPU per slice). */
let slicesSeen = 0;

/** CPU ms of this process (all threads) per slice while `f` runs: load-independent, unlike slices/s. */
async function cpuPerSlice(f: () => Promise<unknown>): Promise<number> {
  const c0 = process.cpuUsage();
  const n0 = slicesSeen;
  await f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000 / Math.max(1, slicesSeen - n0);
}

/**
 * The transport's ceiling: slices/s of a server (this process, same definition and encoder) that
 * only streams `count` precomputed-size F32 slices (a fresh 1 MiB array each, as the engine yields)
 * with no decoding or preprocessing at all.
 */
async function transportCeiling(count: number, h: number, w: number): Promise<number> {
  const server = createServer();
  server.add(PreprocessServiceBulkDefinition, {
    getInfo: () => Promise.resolve({}),
    async *preprocess(reqs) {
      for await (const r of reqs) if (r.msg?.$case === 'start') break;
      for (let i = 0; i < count; i++) {
        const px = new Float32Array(h * w);
        yield {
          msg: {
            $case: 'slice',
            value: {
              mapping: { canonicalIndex: i, inputSliceIndex: i, inputAxis: 2 },
              pixels: { dtype: common.DType.F32, shape: [1, h, w], data: new Uint8Array(px.buffer) },
              rawStats: { min: 0, max: 0, mean: 0, std: 1 },
            },
          },
        };
      }
    },
  });
  const port = await server.listen('127.0.0.1:0');
  const channel = createCuriaChannel(`127.0.0.1:${port}`);
  const client = createCuriaClient(PreprocessServiceBulkDefinition, channel, { retryMaxAttempts: 1 });
  try {
    await serviceRate(client, { kind: 'ref', path: '/unused' });
    return await serviceRate(client, { kind: 'ref', path: '/unused' });
  } finally {
    channel.close();
    await server.shutdown();
  }
}

/** Starts this script as a server child process; resolves with a client to it. */
async function childServer(
  root: string,
  threads?: number,
): Promise<{
  client: preprocess.PreprocessServiceClient;
  close: () => void;
}> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', root], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    env: serviceProcessEnv({
      ...process.env,
      ...(threads === undefined ? {} : { CURIA_PREPROCESS_SLICE_THREADS: String(threads) }),
    }),
    execArgv: serviceNodeFlags(process.env),
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m) => resolve(Number(m)));
    child.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)));
  });
  // createCuriaChannel's default receive window is 16 MiB (a 1 MiB slice needs no window updates).
  const channel = createCuriaChannel(`127.0.0.1:${port}`);
  const opts = { retryMaxAttempts: 1, defaultDeadlineMs: 600_000 };
  return {
    client: createCuriaClient(PreprocessServiceBulkDefinition, channel, opts),
    close: () => {
      channel.close();
      child.kill('SIGTERM');
    },
  };
}

async function serve(root: string): Promise<void> {
  const threads = process.env.CURIA_PREPROCESS_SLICE_THREADS;
  const h = await startPreprocessServer({
    CURIA_PREPROCESS_ALLOWED_ROOTS: root,
    ...(threads === undefined ? {} : { CURIA_PREPROCESS_SLICE_THREADS: threads }),
  });
  process.send?.(h.grpcPort);
  process.once('SIGTERM', () => void h.close().then(() => process.exit(0)));
}

async function main(): Promise<void> {
  const tuned = Object.entries(SERVICE_MALLOC_ENV).every(([k, v]) => process.env[k] === v);
  process.stdout.write(
    `bench process: ${tuned ? 'service malloc settings' : 'default malloc settings (run via npm run bench:preprocess for the service settings)'}\n`,
  );
  const dir = await mkdtemp(join(tmpdir(), 'curia-pp-bench-'));
  const h = await startPreprocessServer({ CURIA_PREPROCESS_ALLOWED_ROOTS: dir });
  const child = await childServer(dir);
  // Same-run A/B: a child server computing slices on its event loop (CURIA_PREPROCESS_SLICE_THREADS=0).
  const loopChild = await childServer(dir, 0);
  const pool = new SlicePool();
  try {
    const cases: [string, string][] = [];
    const shared = sharedDir();
    if (shared) {
      const p = join(dir, 'example_ct_sm.nii.gz');
      await writeFile(p, await readFile(join(shared, 'data/totalsegmentator/example_ct_sm.nii.gz')));
      cases.push(['shared CT 122x101x30 (nii.gz)', p]);
    }
    const dims: [number, number, number] = [512, 512, 300];
    const path = join(dir, 'ct-512x512x300.nii');
    await writeFile(
      path,
      int16Nifti(dims, syntheticCt(...dims), [0.7, 0, 0, 0, 0, 0.7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]),
    );
    cases.push(['generated CT 512x512x300 int16 (nii)', path]);
    for (const [name, file] of cases) {
      const data = new Uint8Array(await readFile(file));
      // The small case is repeated so each measurement lasts long enough to mean something.
      const reps = name.startsWith('shared') ? 5 : 1;
      const rate = async (f: () => Promise<number>): Promise<number> => {
        let sum = 0;
        for (let r = 0; r < reps; r++) sum += 1 / (await f());
        return reps / sum;
      };
      const refSrc = { kind: 'ref', path: file } as const;
      const streamedSrc = { kind: 'streamed', data } as const;
      const modes: [string, () => Promise<number>][] = [
        ['engine', () => engineRate(data)],
        [
          `engine on the slice pool (${pool.size} thread${pool.size === 1 ? '' : 's'})`,
          () => engineRate(data, pool),
        ],
        ['child-process ref', () => serviceRate(child.client, refSrc)],
        ['child-process streamed', () => serviceRate(child.client, streamedSrc)],
        ['child-process ref F16', () => serviceRate(child.client, refSrc, common.DType.F16)],
        ['child-process ref, slices on the event loop (A/B)', () => serviceRate(loopChild.client, refSrc)],
        ['in-process ref', () => serviceRate(h.client, refSrc)],
        ['in-process streamed', () => serviceRate(h.client, streamedSrc)],
      ];
      for (const [, f] of modes) await f(); // warm-up (JIT, page cache, connections)
      // Rounds interleave every mode, so drift in the load of a shared machine hits them alike;
      // each mode's figure is its median over the rounds.
      const rounds = reps === 1 ? 5 : 7;
      const samples = modes.map(() => [] as number[]);
      for (let r = 0; r < rounds; r++) {
        for (const [i, [, f]] of modes.entries()) samples[i]!.push(await rate(f));
      }
      const medians = samples.map(median);
      const engine = medians[0]!;
      const results: [string, number][] = modes.slice(1).map(([label], i) => [label, medians[i + 1]!]);
      const ceiling = await rate(() => transportCeiling(reps === 1 ? 300 : 30, 512, 512));
      results.push(['transport only, no compute, in-process (ceiling)', ceiling]);
      // CPU per slice, all in this process: where the service's time goes, independent of the load.
      const cpu = [
        ['engine', await cpuPerSlice(() => engineRate(data))],
        ['engine on the pool', await cpuPerSlice(() => engineRate(data, pool))],
        [
          'in-process service ref (server + pool + client)',
          await cpuPerSlice(() => serviceRate(h.client, refSrc)),
        ],
        [
          'transport only (server + client)',
          await cpuPerSlice(() => transportCeiling(reps === 1 ? 300 : 30, 512, 512)),
        ],
      ] as const;
      const line = [
        `${name}: engine ${engine.toFixed(1)} slices/s (median of ${rounds} rounds; range ${Math.min(...samples[0]!).toFixed(0)}-${Math.max(...samples[0]!).toFixed(0)})`,
        ...results.map(([label, r]) => `${label} ${r.toFixed(1)} (x${(r / engine).toFixed(2)})`),
      ];
      process.stdout.write(`${line.join(', ')}  [service/engine target >= 0.9]\n`);
      process.stdout.write(
        `    CPU ms per slice: ${cpu.map(([l, v]) => `${l} ${v.toFixed(2)}`).join(', ')}\n`,
      );
    }
  } finally {
    child.close();
    loopChild.close();
    await pool.close();
    await h.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--serve') await serve(process.argv[3] ?? '');
else await main();
