import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { readSafetensors, sharedPathOrSkip, toFloat32 } from '@curia/tensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { embedAction } from './embed.js';
import { describeManifest, modelBuild } from './model.js';

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

  it('builds an INT8 bundle (--quantize int8) whose info shows its source, feature space and fidelity', async () => {
    const f32 = await modelBuild({ random: true, preset: 'tiny', out: join(tmp, 'q-f32') });
    const int8 = await modelBuild({
      random: true,
      preset: 'tiny',
      quantize: 'int8',
      out: join(tmp, 'q-int8'),
    });
    const info = describeManifest(int8.dir, int8.manifest).join('\n');
    expect(info).toMatch(/model +tiny-demo@1-int8 \(DEMO WEIGHTS/);
    expect(info).toContain(`feature space ${f32.manifest.sha256}`);
    expect(info).toContain(`derived from  F32 model sha256 ${f32.manifest.sha256}`);
    expect(info).toMatch(
      /fidelity +on \d+ (shared CT|SYNTHETIC \(no real CT at build\)) slices .*CLS cosine min 0\.99\d+ \(≥ 0\.995\)/,
    );
    expect(describeManifest(f32.dir, f32.manifest).join('\n')).not.toContain('quantization');
    const named = await modelBuild({
      random: true,
      preset: 'tiny',
      quantize: 'int8',
      name: 'probe-demo',
      version: '3',
      out: join(tmp, 'q-named'),
    });
    expect(`${named.manifest.name}@${named.manifest.version}`).toBe('probe-demo@3-int8');
    await expect(
      modelBuild({ random: true, preset: 'tiny', quantize: 'int4', out: join(tmp, 'x') }),
    ).rejects.toThrow(/--quantize must be int8/);
    await expect(
      modelBuild({ random: true, preset: 'tiny', quantize: 'int8', dtype: 'f16', out: join(tmp, 'x') }),
    ).rejects.toThrow(/needs --dtype f32/);
  });
});
