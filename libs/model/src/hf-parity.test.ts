import { join } from 'node:path';

import { readSafetensors, sharedPathOrSkip, toFloat32, writeSafetensors, fromFloat32 } from '@curia/tensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { buildBundleFromHf } from './bundle/build.js';
import { readHfConfig } from './hf-checkpoint.js';
import { loadBundle } from './bundle/load.js';
import { embedFile } from './embed-file.js';
import { EmbedEngine } from './engine.js';
import { clsTokens } from './features.js';
import { maxAbsDiff, tempDir } from './test-support/tmp.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await tempDir('parity');
});
afterAll(async () => {
  await tmp.cleanup();
});

describe.each(['tiny-mlp', 'tiny-swiglu'])('HF parity %s', (variant) => {
  it('matches the PyTorch reference within 1e-4 (engine and embedFile)', async () => {
    const hfDir = sharedPathOrSkip(`reference/dinov2/${variant}`);
    if (!hfDir) return;
    const out = join(tmp.dir, variant);
    const built = await buildBundleFromHf(hfDir, out);
    expect(built.manifest.demo_weights).toBe(false);
    expect(built.manifest.attention).toBe('mha');
    expect(built.manifest.architecture.ffn).toBe(variant === 'tiny-swiglu' ? 'swiglu' : 'mlp');
    expect((await loadBundle(out)).manifest.sha256).toBe(built.manifest.sha256);

    const ref = await readSafetensors(join(hfDir, 'vectors.safetensors'));
    const px = toFloat32(ref.tensors.get('pixel_values')!);
    const refLhs = toFloat32(ref.tensors.get('last_hidden_state')!);
    const refPool = toFloat32(ref.tensors.get('pooler_output')!);

    const engine = await EmbedEngine.open(out);
    try {
      const r = await engine.run(px, 2, { outputs: ['last_hidden_state', 'last_block_prenorm'] });
      expect([r.tokens, r.hidden, r.numRegisterTokens]).toEqual([1025, 96, 0]);
      const dLhs = maxAbsDiff(r.lastHiddenState!, refLhs);
      const layout = { tokens: r.tokens, hidden: r.hidden, numRegisterTokens: 0 };
      const dPool = maxAbsDiff(clsTokens(r.lastHiddenState!, layout), refPool);
      console.log(
        `${variant}: max|diff| last_hidden_state ${dLhs.toExponential(2)}, pooler_output ${dPool.toExponential(2)}`,
      );
      expect(dLhs).toBeLessThanOrEqual(1e-4);
      expect(dPool).toBeLessThanOrEqual(1e-4);
      // The pre-norm output is a different tensor from the post-LN one.
      expect(maxAbsDiff(r.lastBlockPrenorm!, r.lastHiddenState!)).toBeGreaterThan(1e-2);
      const only = await engine.run(px.subarray(0, 512 * 512), 1);
      expect(only.lastBlockPrenorm).toBeUndefined();
      expect(maxAbsDiff(only.lastHiddenState!, refLhs.subarray(0, 1025 * 96))).toBeLessThanOrEqual(1e-4);
    } finally {
      await engine.close();
    }

    const outFile = join(tmp.dir, `${variant}-emb.safetensors`);
    await embedFile(out, join(hfDir, 'vectors.safetensors'), outFile, { batchSize: 1 });
    const got = await readSafetensors(outFile);
    expect(got.tensors.get('last_hidden_state')!.shape).toEqual([2, 1025, 96]);
    expect(got.tensors.get('pooler_output')!.shape).toEqual([2, 96]);
    expect(got.tensors.get('last_block_prenorm')!.shape).toEqual([2, 1025, 96]);
    expect(maxAbsDiff(toFloat32(got.tensors.get('last_hidden_state')!), refLhs)).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDiff(toFloat32(got.tensors.get('pooler_output')!), refPool)).toBeLessThanOrEqual(1e-4);
  });
});

describe('checkpoint variants', () => {
  it("imports an F16 checkpoint with 'dino.' prefixes", async () => {
    const hfDir = sharedPathOrSkip('reference/dinov2/tiny-mlp');
    if (!hfDir) return;
    const src = await readSafetensors(join(hfDir, 'model.safetensors'));
    const ck = join(tmp.dir, 'f16-ckpt');
    const { mkdir, copyFile } = await import('node:fs/promises');
    await mkdir(ck, { recursive: true });
    await copyFile(join(hfDir, 'config.json'), join(ck, 'config.json'));
    await writeSafetensors(
      join(ck, 'model.safetensors'),
      [...src.tensors].map(([n, t]) => [`dino.${n}`, fromFloat32(toFloat32(t), t.shape, 'F16')] as const),
    );
    const out = join(tmp.dir, 'f16-bundle');
    await buildBundleFromHf(ck, out);
    const ref = await readSafetensors(join(hfDir, 'vectors.safetensors'));
    const engine = await EmbedEngine.open(out);
    try {
      const r = await engine.run(toFloat32(ref.tensors.get('pixel_values')!), 2);
      const d = maxAbsDiff(r.lastHiddenState!, toFloat32(ref.tensors.get('last_hidden_state')!));
      console.log(`F16-weight checkpoint: max|diff| ${d.toExponential(2)}`);
      expect(d).toBeLessThan(5e-2);
    } finally {
      await engine.close();
    }
  });

  it('keeps parity with the standard-ops attention graph variant', async () => {
    const hfDir = sharedPathOrSkip('reference/dinov2/tiny-swiglu');
    if (!hfDir) return;
    const out = join(tmp.dir, 'standard');
    const built = await buildBundleFromHf(hfDir, out, { attention: 'standard' });
    expect(built.manifest.attention).toBe('standard');
    const ref = await readSafetensors(join(hfDir, 'vectors.safetensors'));
    const engine = await EmbedEngine.open(out);
    try {
      const r = await engine.run(toFloat32(ref.tensors.get('pixel_values')!), 2);
      const d = maxAbsDiff(r.lastHiddenState!, toFloat32(ref.tensors.get('last_hidden_state')!));
      console.log(`standard-ops attention graph: max|diff| ${d.toExponential(2)}`);
      expect(d).toBeLessThanOrEqual(1e-4);
    } finally {
      await engine.close();
    }
  });

  it("builds the identical backbone from a Curia head checkpoint's 'dino.*' copy", async () => {
    const hfDir = sharedPathOrSkip('reference/dinov2/tiny-mlp');
    const headDir = sharedPathOrSkip('reference/heads/cls-linear-2d');
    if (!hfDir || !headDir) return;
    const direct = await buildBundleFromHf(hfDir, join(tmp.dir, 'direct'), { name: 'tiny' });
    const fromHead = await buildBundleFromHf(headDir, join(tmp.dir, 'from-head'), {
      name: 'tiny',
      hfConfig: await readHfConfig(hfDir),
      weightsFile: join(headDir, 'model.safetensors'),
    });
    expect(fromHead.manifest.sha256).toBe(direct.manifest.sha256);
  });

  it('exports an F16-compute graph that runs on CPU within a loose tolerance', async () => {
    const hfDir = sharedPathOrSkip('reference/dinov2/tiny-swiglu');
    if (!hfDir) return;
    const out = join(tmp.dir, 'f16-graph');
    const built = await buildBundleFromHf(hfDir, out, { dtype: 'f16' });
    expect(built.manifest.dtype).toBe('f16');
    const ref = await readSafetensors(join(hfDir, 'vectors.safetensors'));
    const engine = await EmbedEngine.open(out);
    try {
      const r = await engine.run(toFloat32(ref.tensors.get('pixel_values')!), 2, {
        outputs: ['last_hidden_state', 'last_block_prenorm'],
      });
      const d = maxAbsDiff(r.lastHiddenState!, toFloat32(ref.tensors.get('last_hidden_state')!));
      console.log(`F16 compute graph: max|diff| ${d.toExponential(2)}`);
      expect(d).toBeLessThan(5e-2);
      expect(r.lastBlockPrenorm!.length).toBe(2 * 1025 * 96);
    } finally {
      await engine.close();
    }
  });
});
