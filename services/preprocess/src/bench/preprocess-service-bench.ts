/**
 * Preprocess service benchmark: slices/s of the engine in-process (open + preprocessSlices, the
 * baseline, measured in the same run) versus the full gRPC path through a PreprocessService on
 * 127.0.0.1:0, on the shared CT and on a generated 512x512x300 int16 CT written as NIfTI to a temp
 * file. Service modes: `streamed` (upload in 1 MiB chunks + decode + preprocess + transfer) and
 * `ref` (the server reads the file itself), each with the server in this process (client and
 * server share one event loop) and in a child process (as deployed). Prints service/engine.
 *
 * Run after `npm run build`: node services/preprocess/dist/bench/preprocess-service-bench.js
 */
import { fork } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { ChannelCredentials, createChannel } from 'nice-grpc';

import { createCuriaChannel, createCuriaClient } from '@curia/client';

import { common, preprocess } from '@curia/proto';
import { sharedDir } from '@curia/tensors';
import { openVolume, preprocessSlices } from '@curia/volume';

import { chunkMessages, requestStream, startPreprocessServer } from '../testing/harness.js';
import { int16Nifti, syntheticCt } from '../testing/nifti.js';

async function engineRate(data: Uint8Array): Promise<number> {
  const t0 = performance.now();
  const volume = await openVolume({ kind: 'bytes', data });
  let n = 0;
  for await (const s of preprocessSlices(volume)) if (s.pixels.length > 0) n++;
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
  return (n * 1000) / (performance.now() - t0);
}

/** Starts this script as a server child process; resolves with a client to it. */
async function childServer(root: string): Promise<{
  client: preprocess.PreprocessServiceClient;
  tunedClient: preprocess.PreprocessServiceClient;
  close: () => void;
}> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', root], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m) => resolve(Number(m)));
    child.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)));
  });
  const channel = createCuriaChannel(`127.0.0.1:${port}`);
  // Same channel with a 16 MiB HTTP/2 receive window (grpc-js defaults to 64 KiB: ~16 window
  // updates per 1 MiB slice). createCuriaChannel does not expose this option yet.
  const tuned = createChannel(`127.0.0.1:${port}`, ChannelCredentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc-node.flow_control_window': 16 * 1024 * 1024,
  });
  const opts = { retryMaxAttempts: 1, defaultDeadlineMs: 600_000 };
  return {
    client: createCuriaClient(preprocess.PreprocessServiceDefinition, channel, opts),
    tunedClient: createCuriaClient(preprocess.PreprocessServiceDefinition, tuned, opts),
    close: () => {
      channel.close();
      tuned.close();
      child.kill('SIGTERM');
    },
  };
}

async function serve(root: string): Promise<void> {
  const h = await startPreprocessServer({ CURIA_PREPROCESS_ALLOWED_ROOTS: root });
  process.send?.(h.grpcPort);
  process.once('SIGTERM', () => void h.close().then(() => process.exit(0)));
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'curia-pp-bench-'));
  const h = await startPreprocessServer({ CURIA_PREPROCESS_ALLOWED_ROOTS: dir });
  const child = await childServer(dir);
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
      await engineRate(data); // warm-up (JIT, weight cache)
      const engine = await engineRate(data);
      const line = [`${name}: engine ${engine.toFixed(1)} slices/s`];
      for (const [label, client] of [
        ['in-process', h.client],
        ['child-process', child.client],
        ['child-process+16MiB-window', child.tunedClient],
      ] as const) {
        for (const src of [
          { kind: 'streamed', data },
          { kind: 'ref', path: file },
        ] as const) {
          await serviceRate(client, src);
          const rate = await serviceRate(client, src);
          line.push(`${label} ${src.kind} ${rate.toFixed(1)} (x${(rate / engine).toFixed(2)})`);
        }
      }
      // Transport-bound check: the same path with half the bytes per slice.
      const f16 = await serviceRate(child.client, { kind: 'ref', path: file }, common.DType.F16);
      line.push(`child-process ref F16 ${f16.toFixed(1)} (x${(f16 / engine).toFixed(2)})`);
      process.stdout.write(`${line.join(', ')}  [service/engine target >= 0.9]\n`);
    }
  } finally {
    child.close();
    await h.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--serve') await serve(process.argv[3] ?? '');
else await main();
