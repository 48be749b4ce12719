/**
 * Predict latency through gRPC vs in-process `head.run` (run from dist:
 * `node services/heads/dist/bench/heads-service-bench.js`). Uses the shared Curia heads
 * (tiny-mlp, hidden 96) with random features of the right shapes: latency does not depend on values.
 * The 3D attention head runs its attention module as ONNX graphs (built when the store loads it),
 * measured up to 300 slices × 64 pooled tokens.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Head, HeadFeatures } from '@curia/heads';
import { sharedDir } from '@curia/tensors';

import { startHeadsServer } from '../testing/start-server.js';
import { sliceFeaturesOf } from '../wire-features.js';

function randomFeatures(head: Head, slices: number, seed: number): HeadFeatures {
  let a = seed;
  const rnd = (): number => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a / 4294967296 - 0.5;
  };
  const d = head.meta.requirements.hidden;
  const blocks = head.meta.requirements.inputs.map((spec) => {
    const k = spec.kind === 'avg_pooled_tokens' ? spec.k : 0;
    const g = Math.round(Math.sqrt(head.meta.backbone?.num_patches ?? 1024));
    const t = k ? Math.floor(g / k) ** 2 : 1;
    return { data: Float32Array.from({ length: slices * t * d }, rnd), tokensPerSlice: t };
  });
  return { slices, hidden: d, blocks };
}

async function median(n: number, fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  return times[Math.floor(times.length / 2)]!;
}

const shared = sharedDir();
if (!shared) {
  process.stderr.write('the bench needs ../shared/reference/heads\n');
  process.exit(2);
}
const tmp = await mkdtemp(join(tmpdir(), 'curia-heads-bench-'));
const svc = await startHeadsServer({
  CURIA_HEADS_DIR: join(tmp, 'store'),
  CURIA_HEADS_IMPORT: ['cls-linear-2d', 'attn-3d']
    .map((h) => join(shared, 'reference', 'heads', h))
    .join(','),
});
try {
  const cases: [string, number, number][] = [
    ['cls-linear-2d', 1, 200],
    ['cls-linear-2d', 300, 50],
    ['attn-3d', 10, 10],
    ['attn-3d', 30, 5],
    ['attn-3d', 300, 3],
  ];
  process.stdout.write('head            slices  in-process ms  gRPC ms  ratio gRPC/in-process\n');
  for (const [name, slices, iters] of cases) {
    const head = svc.store.get(name).head;
    const f = randomFeatures(head, slices, 42);
    const local = await median(iters, () => head.run(f));
    const remote = await median(iters, () =>
      svc.client.predict({ head: name, slices: sliceFeaturesOf(head, f) }),
    );
    process.stdout.write(
      `${name.padEnd(15)} ${String(slices).padStart(6)}  ${local.toFixed(3).padStart(13)}  ${remote.toFixed(3).padStart(7)}  ${(remote / local).toFixed(2).padStart(6)}x\n`,
    );
  }
  process.stdout.write(
    'gRPC time includes client encoding of the features (F32) and the loopback round trip.\n',
  );
} finally {
  await svc.close();
  await rm(tmp, { recursive: true, force: true });
}
