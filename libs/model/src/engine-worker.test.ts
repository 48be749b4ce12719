import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { buildRandomBundle } from './bundle/build.js';
import { EmbedEngine } from './engine.js';
import { WorkerEmbedEngine } from './engine-worker.js';
import { mulberry32 } from './random-weights.js';
import { tempDir } from './test-support/tmp.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let bundleDir: string;
beforeAll(async () => {
  tmp = await tempDir('worker');
  bundleDir = (await buildRandomBundle(join(tmp.dir, 'b'), { preset: 'tiny', seed: 3 })).dir;
});
afterAll(async () => {
  await tmp.cleanup();
});

describe('WorkerEmbedEngine', () => {
  it('returns bit-identical outputs to EmbedEngine and re-creates its errors', async () => {
    const local = await EmbedEngine.open(bundleDir, { intraOpThreads: 1 });
    const remote = await WorkerEmbedEngine.open(bundleDir, { intraOpThreads: 1 });
    try {
      expect(remote.info()).toEqual(local.info());
      expect(remote.bundle.manifest.sha256).toBe(local.bundle.manifest.sha256);
      const per = remote.pixelsPerSlice;
      const u = mulberry32(11);
      const px = new Float32Array(2 * per);
      for (let i = 0; i < px.length; i++) px[i] = u() * 4 - 2;
      const outputs = ['last_hidden_state', 'last_block_prenorm'] as const;
      const want = await local.run(px, 2, { outputs });
      // Concurrent calls are answered by id, each with its own result.
      const [got, one] = await Promise.all([
        remote.run(px, 2, { outputs }),
        remote.run(px.subarray(per), 1, { outputs: ['last_hidden_state'] }),
      ]);
      expect(px.length).toBe(2 * per); // copied, not detached
      expect(Buffer.from(got.lastHiddenState!.buffer).equals(Buffer.from(want.lastHiddenState!.buffer))).toBe(
        true,
      );
      expect(
        Buffer.from(got.lastBlockPrenorm!.buffer).equals(Buffer.from(want.lastBlockPrenorm!.buffer)),
      ).toBe(true);
      const seq = want.tokens * want.hidden;
      expect(one.lastBlockPrenorm).toBeUndefined();
      expect(Array.from(one.lastHiddenState!)).toEqual(Array.from(want.lastHiddenState!.subarray(seq)));
      // Transferred input: detached afterwards, same result.
      const moved = px.slice();
      const viaTransfer = await remote.run(moved, 2, { transferInput: true });
      expect(moved.length).toBe(0);
      expect(Array.from(viaTransfer.lastHiddenState!)).toEqual(Array.from(want.lastHiddenState!));
      const bad = new Float32Array(per);
      bad[5] = NaN;
      await expect(remote.run(bad, 1)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      // A caller that checked its input itself (inputChecked) is trusted across the thread too.
      const unscanned = await remote.run(bad, 1, { inputChecked: true });
      expect(unscanned.lastHiddenState!.some((v) => Number.isNaN(v))).toBe(true);
      await expect(remote.run(new Float32Array(3), 1)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    } finally {
      await local.close();
      await remote.close();
    }
    await expect(remote.run(new Float32Array(remote.pixelsPerSlice), 1)).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
    });
  });

  it('reports a thread that dies on its own: pending and later runs fail UNAVAILABLE, listeners hear once', async () => {
    const engine = await WorkerEmbedEngine.open(bundleDir, { intraOpThreads: 1 });
    const heard: Error[] = [];
    engine.onFailure((e) => heard.push(e));
    const pending = engine.run(new Float32Array(engine.pixelsPerSlice), 1);
    // Stands in for a native crash: the thread ends without a close from its owner.
    await (engine as unknown as { worker: Worker }).worker.terminate();
    await expect(pending).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(engine.run(new Float32Array(engine.pixelsPerSlice), 1)).rejects.toMatchObject({
      code: 'UNAVAILABLE',
    });
    expect(heard).toHaveLength(1);
    expect(heard[0]!.message).toContain('engine thread died');
    await engine.close();
    const late: Error[] = [];
    engine.onFailure((e) => late.push(e));
    expect(late).toHaveLength(1);
  });

  it('does not report a failure after close', async () => {
    const engine = await WorkerEmbedEngine.open(bundleDir, { intraOpThreads: 1 });
    const heard: Error[] = [];
    engine.onFailure((e) => heard.push(e));
    await engine.close();
    expect(heard).toEqual([]);
  });

  it('fails open with the engine error code for a missing bundle', async () => {
    await expect(WorkerEmbedEngine.open(join(tmp.dir, 'nope'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
