import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { readSafetensors, sharedPathOrSkip, toFloat32 } from '@curia/tensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { embedAction } from './embed.js';
import { modelBuild } from './model.js';

let tmp = '';
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'curia-cli-model-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('curia model build / curia embed', () => {
  it('builds tiny-mlp from HF and embeds the reference slices within 1e-4', async () => {
    const hf = sharedPathOrSkip('reference/dinov2/tiny-mlp');
    if (!hf) return;
    const bundle = join(tmp, 'tiny-mlp');
    const built = await modelBuild({ hf, out: bundle });
    expect(built.manifest.demo_weights).toBe(false);
    const vectors = join(hf, 'vectors.safetensors');
    const outFile = join(tmp, 'out.safetensors');
    const r = await embedAction({ model: bundle, in: vectors, out: outFile, batch: '1' });
    expect([r.slices, r.tokens, r.hidden]).toEqual([2, 1025, 96]);
    const got = await readSafetensors(outFile);
    const ref = await readSafetensors(vectors);
    for (const name of ['last_hidden_state', 'pooler_output']) {
      const d = maxAbsDiff(toFloat32(got.tensors.get(name)!), toFloat32(ref.tensors.get(name)!));
      expect(d).toBeLessThanOrEqual(1e-4);
    }
  });

  it('builds a seeded random bundle and rejects bad option combinations', async () => {
    const a = await modelBuild({ random: true, preset: 'tiny', seed: '3', out: join(tmp, 'r1') });
    expect(a.manifest.demo_weights).toBe(true);
    expect(a.manifest.name).toBe('tiny-demo');
    await expect(modelBuild({ out: join(tmp, 'x') })).rejects.toThrow(/exactly one of --hf/);
    await expect(modelBuild({ random: true, preset: 'huge', out: join(tmp, 'x') })).rejects.toThrow(
      /--preset/,
    );
    await expect(
      modelBuild({ random: true, preset: 'tiny', seed: '-1', out: join(tmp, 'x') }),
    ).rejects.toThrow(/--seed/);
    await expect(embedAction({ model: a.dir, in: 'x', out: 'y', batch: '0' })).rejects.toThrow(/--batch/);
  });
});
