import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { readSafetensors, sharedPathOrSkip, writeSafetensors, type RawTensor } from '@curia/tensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { architectureFromHfConfig } from './hf-checkpoint.js';
import { buildBundleFromHf, buildRandomBundle } from './bundle/build.js';
import { loadBundle } from './bundle/load.js';
import { EmbedEngine } from './engine.js';
import { expectCuriaError, tempDir } from './test-support/tmp.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let bundle: string;
beforeAll(async () => {
  tmp = await tempDir('errors');
  bundle = join(tmp.dir, 'tiny');
  await buildRandomBundle(bundle, { preset: 'tiny', seed: 3 });
});
afterAll(async () => {
  await tmp.cleanup();
});

/** Copies the shared tiny-mlp checkpoint with `edit` applied to its tensor map. */
async function editedCheckpoint(
  name: string,
  edit: (m: Map<string, RawTensor>) => void,
): Promise<string | null> {
  const hfDir = sharedPathOrSkip('reference/dinov2/tiny-mlp');
  if (!hfDir) return null;
  const dir = join(tmp.dir, name);
  await mkdir(dir, { recursive: true });
  await copyFile(join(hfDir, 'config.json'), join(dir, 'config.json'));
  const { tensors } = await readSafetensors(join(hfDir, 'model.safetensors'));
  edit(tensors);
  await writeSafetensors(join(dir, 'model.safetensors'), tensors);
  return dir;
}

describe('checkpoint validation', () => {
  it('names a missing tensor (FAILED_PRECONDITION)', async () => {
    const dir = await editedCheckpoint('missing', (m) => m.delete('encoder.layer.1.mlp.fc2.bias'));
    if (!dir) return;
    await expectCuriaError(
      () => buildBundleFromHf(dir, join(tmp.dir, 'out-missing')),
      'FAILED_PRECONDITION',
      /'encoder\.layer\.1\.mlp\.fc2\.bias'/,
    );
  });

  it('names a tensor with the wrong shape (INVALID_ARGUMENT)', async () => {
    const dir = await editedCheckpoint('shape', (m) => {
      const t = m.get('encoder.layer.0.attention.attention.key.weight')!;
      m.set('encoder.layer.0.attention.attention.key.weight', { ...t, shape: [48, 192] });
    });
    if (!dir) return;
    await expectCuriaError(
      () => buildBundleFromHf(dir, join(tmp.dir, 'out-shape')),
      'INVALID_ARGUMENT',
      /'encoder\.layer\.0\.attention\.attention\.key\.weight' has shape \[48, 192\], expected \[96, 96\]/,
    );
  });

  it('rejects unknown model types and impossible configs', () => {
    expect(() => architectureFromHfConfig({ model_type: 'vit' })).toThrow(/model_type/);
    expect(() =>
      architectureFromHfConfig({ model_type: 'dinov2', hidden_size: 100, num_attention_heads: 3 }),
    ).toThrow(/multiple of num_heads/);
    const regs = architectureFromHfConfig({
      model_type: 'dinov2_with_registers',
      image_size: 512,
      patch_size: 16,
    });
    expect(regs.num_register_tokens).toBe(4);
  });
});

describe('bundle validation', () => {
  async function copyBundle(name: string): Promise<string> {
    const dir = join(tmp.dir, name);
    await mkdir(dir, { recursive: true });
    for (const f of ['model.onnx', 'bundle.json']) await copyFile(join(bundle, f), join(dir, f));
    return dir;
  }

  it('rejects a corrupt bundle.json (FAILED_PRECONDITION)', async () => {
    const dir = await copyBundle('corrupt-json');
    await writeFile(join(dir, 'bundle.json'), '{"schema_version": 1, "name": ');
    await expectCuriaError(() => loadBundle(dir), 'FAILED_PRECONDITION', /not valid JSON/);
    const m = JSON.parse(await readFile(join(bundle, 'bundle.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'bundle.json'), JSON.stringify({ ...m, dtype: 'int8' }));
    await expectCuriaError(() => loadBundle(dir), 'FAILED_PRECONDITION', /invalid at dtype/);
    await expectCuriaError(() => loadBundle(join(tmp.dir, 'nowhere')), 'NOT_FOUND');
  });

  it('detects a model that does not match its sha256 (FAILED_PRECONDITION)', async () => {
    const dir = await copyBundle('bad-sha');
    const model = await readFile(join(dir, 'model.onnx'));
    model[model.length - 5]! ^= 0xff;
    await writeFile(join(dir, 'model.onnx'), model);
    await expectCuriaError(() => EmbedEngine.open(dir), 'FAILED_PRECONDITION', /sha256/);
    // With verification disabled the flipped weight byte goes unnoticed (it is still a valid model).
    const engine = await EmbedEngine.open(dir, { verifySha256: false });
    await engine.close();
  });
});

describe('engine input validation', () => {
  it('rejects wrong pixel counts, NaN, bad batch and reports the CUDA fallback', async () => {
    const engine = await EmbedEngine.open(bundle, { executionProviders: ['cuda', 'cpu'], maxBatch: 2 });
    try {
      const info = engine.info();
      expect(info.executionProvider).toBe('cpu');
      expect(info.fallbackReason).toMatch(/^cuda: /);
      expect(info.demoWeights).toBe(true);
      expect(info.name).toBe('tiny-demo');
      const px = new Float32Array(512 * 512);
      await expectCuriaError(
        () => engine.run(px.subarray(1), 1),
        'INVALID_ARGUMENT',
        /expected batch 1 × 1 × 512 × 512 = 262144/,
      );
      await expectCuriaError(() => engine.run(px, 2), 'INVALID_ARGUMENT', /pixel_values has 262144 values/);
      await expectCuriaError(
        () => engine.run(new Float32Array(3 * 512 * 512), 3),
        'RESOURCE_EXHAUSTED',
        /maxBatch 2/,
      );
      await expectCuriaError(() => engine.run(px, 0), 'INVALID_ARGUMENT', /batch/);
      const nan = new Float32Array(2 * 512 * 512);
      nan[512 * 512 + 7] = NaN;
      await expectCuriaError(
        () => engine.run(nan, 2),
        'INVALID_ARGUMENT',
        /NaN or infinite value in slice 1/,
      );
      // inputChecked: the caller vouches for its pixels, so the engine does not scan them.
      const unscanned = await engine.run(nan, 2, { inputChecked: true });
      expect(unscanned.lastHiddenState!.some((v) => Number.isNaN(v))).toBe(true);
      const ac = new AbortController();
      ac.abort();
      await expectCuriaError(() => engine.run(px, 1, { signal: ac.signal }), 'CANCELLED');
      const ok = await engine.run(px, 1);
      expect(ok.lastHiddenState!.length).toBe(1025 * 96);
    } finally {
      await engine.close();
    }
    await expectCuriaError(() => engine.run(new Float32Array(512 * 512), 1), 'FAILED_PRECONDITION', /closed/);
  });
});
