import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { fromFloat32, writeSafetensors, type RawTensor } from '@curia/tensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { expectedParameters, presetArchitecture, type DinoWeights } from './architecture.js';
import { buildBundleFromHf } from './bundle/build.js';
import { EmbedEngine } from './engine.js';
import { HF_SHARD_INDEX, HF_SINGLE_FILE } from './hf-checkpoint.js';
import { randomWeights } from './random-weights.js';
import { expectCuriaError, maxAbsDiff, tempDir } from './test-support/tmp.js';

/** HF config.json of the `tiny` preset with SwiGLU (96 wide, 2 layers, 1 channel, 512², patch 16). */
const TINY_CONFIG = {
  model_type: 'dinov2',
  hidden_size: 96,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  image_size: 512,
  patch_size: 16,
  num_channels: 1,
  use_swiglu_ffn: true,
};
const arch = presetArchitecture('tiny', { ffn: 'swiglu' });
const weights: DinoWeights = randomWeights(arch, { seed: 7 });

/** Encodes F32 values as `dtype` (BF16: the upper 16 bits of each F32, i.e. truncation). */
function encode(values: Float32Array, shape: readonly number[], dtype: 'F32' | 'F16' | 'BF16'): RawTensor {
  if (dtype !== 'BF16') return fromFloat32(values, shape, dtype);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  return { dtype: 'BF16', shape, data: new Uint8Array(Uint16Array.from(bits, (b) => b >>> 16).buffer) };
}

/** Writes `config.json` and either one `model.safetensors` or `shards` shard files plus the index. */
async function writeCheckpoint(dir: string, dtype: 'F32' | 'F16' | 'BF16', shards: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(TINY_CONFIG));
  // A 'dinov2.' prefix and an extra tensor, as wrapped checkpoints carry them.
  const shapes = expectedParameters(arch);
  const all: [string, RawTensor][] = [...weights].map(([n, w]) => [
    `dinov2.${n}`,
    encode(w, shapes.get(n)!, dtype),
  ]);
  all.push(['dinov2.embeddings.mask_token', encode(new Float32Array(96), [1, 96], dtype)]);
  if (shards === 1) {
    await writeSafetensors(join(dir, HF_SINGLE_FILE), all);
    return;
  }
  const pad = (k: number): string => String(k).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  const per = Math.ceil(all.length / shards);
  for (let s = 0; s < shards; s++) {
    const file = `model-${pad(s + 1)}-of-${pad(shards)}.safetensors`;
    const part = all.slice(s * per, (s + 1) * per);
    for (const [n] of part) weightMap[n] = file;
    await writeSafetensors(join(dir, file), part);
  }
  await writeFile(
    join(dir, HF_SHARD_INDEX),
    JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }, null, 2),
  );
}

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await tempDir('sharded');
});
afterAll(async () => {
  await tmp.cleanup();
});

describe('sharded HF checkpoints', () => {
  it.each(['F32', 'F16', 'BF16'] as const)(
    'a %s checkpoint in 3 shards builds the same model.onnx as its single-file copy',
    async (dtype) => {
      const single = join(tmp.dir, `single-${dtype}`);
      const sharded = join(tmp.dir, `sharded-${dtype}`);
      await writeCheckpoint(single, dtype, 1);
      await writeCheckpoint(sharded, dtype, 3);
      const a = await buildBundleFromHf(single, join(tmp.dir, `b-single-${dtype}`), { name: 'tiny' });
      const b = await buildBundleFromHf(sharded, join(tmp.dir, `b-sharded-${dtype}`), { name: 'tiny' });
      // Same weights → byte-identical graph; the output check below guards the sha comparison itself.
      expect(b.manifest.sha256).toBe(a.manifest.sha256);
      if (dtype !== 'F32') return;
      const px = new Float32Array(512 * 512).map((_, i) => Math.sin(i / 997));
      const outputs: Float32Array[] = [];
      for (const dir of [a.dir, b.dir]) {
        const engine = await EmbedEngine.open(dir);
        try {
          outputs.push((await engine.run(px, 1)).lastHiddenState!);
        } finally {
          await engine.close();
        }
      }
      expect(maxAbsDiff(outputs[0]!, outputs[1]!)).toBe(0);
    },
  );

  it('says a folder has neither a single-file nor a sharded checkpoint', async () => {
    const dir = join(tmp.dir, 'empty');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'config.json'), JSON.stringify(TINY_CONFIG));
    await expectCuriaError(
      () => buildBundleFromHf(dir, join(tmp.dir, 'never')),
      'FAILED_PRECONDITION',
      /cannot read checkpoint model\.safetensors \(the folder has no model\.safetensors\.index\.json either\): .*ENOENT/,
    );
  });

  it('names a missing shard file', async () => {
    const dir = join(tmp.dir, 'missing-shard');
    await writeCheckpoint(dir, 'F32', 2);
    await rm(join(dir, 'model-00002-of-00002.safetensors'));
    await expectCuriaError(
      () => buildBundleFromHf(dir, join(tmp.dir, 'never')),
      'FAILED_PRECONDITION',
      /shard model-00002-of-00002\.safetensors .*ENOENT/,
    );
  });

  it('names a tensor the index promises that no shard holds, and a shard lacking its tensor', async () => {
    const dir = join(tmp.dir, 'bad-index');
    await writeCheckpoint(dir, 'F32', 2);
    const index = JSON.parse(await readFile(join(dir, HF_SHARD_INDEX), 'utf8')) as {
      weight_map: Record<string, string>;
    };
    const ghost = {
      ...index,
      weight_map: { ...index.weight_map, 'dinov2.ghost.weight': 'model-00001-of-00002.safetensors' },
    };
    await writeFile(join(dir, HF_SHARD_INDEX), JSON.stringify(ghost));
    await expectCuriaError(
      () => buildBundleFromHf(dir, join(tmp.dir, 'never')),
      'FAILED_PRECONDITION',
      /tensor 'dinov2\.ghost\.weight' in model-00001-of-00002\.safetensors, which lacks it; no shard holds it/,
    );
    const cls = 'dinov2.embeddings.cls_token';
    const other = index.weight_map[cls] === 'model-00001-of-00002.safetensors' ? 2 : 1;
    const moved = {
      ...index,
      weight_map: { ...index.weight_map, [cls]: `model-0000${other}-of-00002.safetensors` },
    };
    await writeFile(join(dir, HF_SHARD_INDEX), JSON.stringify(moved));
    await expectCuriaError(
      () => buildBundleFromHf(dir, join(tmp.dir, 'never')),
      'FAILED_PRECONDITION',
      /tensor 'dinov2\.embeddings\.cls_token' in model-0000\d-of-00002\.safetensors, which lacks it \(it is in model-0000\d-of-00002\.safetensors\)/,
    );
    await writeFile(join(dir, HF_SHARD_INDEX), JSON.stringify({ weight_map: { [cls]: '../x.safetensors' } }));
    await expectCuriaError(
      () => buildBundleFromHf(dir, join(tmp.dir, 'never')),
      'FAILED_PRECONDITION',
      /not a file name/,
    );
  });
});
