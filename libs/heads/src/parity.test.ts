import { join } from 'node:path';

import type { EmbedEngine } from '@curia/model';
import {
  SafetensorsFile,
  readSafetensors,
  sharedPathOrSkip,
  toFloat32,
  writeSafetensors,
} from '@curia/tensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runHeadFile } from './cli.js';
import { computeHeadFeatures, embedOutputsFor } from './features.js';
import { Head, checkBackboneCompatibility, loadHead } from './head.js';
import { importCuriaHead, readCuriaHead, type ImportCuriaOptions } from './import-curia.js';
import { openTestBackbone, type TestBackbone } from './testing.js';

const tinyDir = sharedPathOrSkip('reference/dinov2/tiny-mlp');
const headsDir = sharedPathOrSkip('reference/heads');

describe.runIf(tinyDir && headsDir)('Curia head parity from pixel_values (tiny-mlp backbone)', () => {
  let backbone: TestBackbone | undefined;
  let tmp = '';
  let engine: EmbedEngine;

  beforeAll(async () => {
    backbone = await openTestBackbone(tinyDir!, 'curia-heads-parity');
    ({ engine, dir: tmp } = backbone);
  });
  afterAll(() => backbone?.close());

  const cases: [string, ImportCuriaOptions, string][] = [
    ['cls-linear-2d', { input: 'cls' }, 'cls-linear'],
    ['mask-linear-2d', { input: 'mask' }, 'mask-linear'],
    ['attn-3d', {}, 'attention-3d'],
  ];
  for (const [name, opts, kind] of cases) {
    it(`${name}: logits match the PyTorch reference within 1e-4`, async () => {
      const out = join(tmp, `head-${name}`);
      await importCuriaHead(join(headsDir!, name), out, opts);
      const head = await loadHead(out);
      expect(head.meta.kind).toBe(kind);
      checkBackboneCompatibility(head, engine.bundle.manifest.architecture);

      const vec = await SafetensorsFile.open(join(headsDir!, name, 'vectors.safetensors'));
      const px = await vec.read('pixel_values');
      const batch = px.shape[0]!;
      const tokens = await engine.run(toFloat32(px), batch, {
        outputs: embedOutputsFor(head.requirements()),
      });
      const mask = vec.names().includes('mask')
        ? { data: toFloat32(await vec.read('mask')), height: px.shape[2]!, width: px.shape[3]! }
        : undefined;
      const features = computeHeadFeatures(head.requirements(), tokens, mask);
      const res = await head.run(features);
      const expected = toFloat32(await vec.read('logits'));
      expect(res.logits.length).toBe(expected.length);
      let maxDiff = 0;
      for (let i = 0; i < expected.length; i++)
        maxDiff = Math.max(maxDiff, Math.abs(res.logits[i]! - expected[i]!));
      console.log(
        `${name}: max |logits - reference| = ${maxDiff.toExponential(3)} over ${expected.length} values`,
      );
      expect(maxDiff).toBeLessThanOrEqual(1e-4);
      if (kind === 'attention-3d') {
        // The default backend is the ONNX attention module; the TypeScript reference must agree too.
        const js = await head.run(features, { backend: 'js' });
        const dJs = Math.max(...js.logits.map((v, i) => Math.abs(v - expected[i]!)));
        console.log(`${name}: TypeScript reference max |logits - reference| = ${dJs.toExponential(3)}`);
        expect(dJs).toBeLessThanOrEqual(1e-4);
        await head.release();
      }
      const p = res.probabilities!;
      for (let r = 0; r < res.rows; r++) {
        let s = 0;
        for (let c = 0; c < res.outputs; c++) s += p[r * res.outputs + c]!;
        expect(s).toBeCloseTo(1, 5);
      }
    });
  }

  it('runHeadFile: safetensors in, logits/probabilities out, matching the reference', async () => {
    for (const [name, opts] of [
      ['mask-linear-2d', { input: 'mask' }],
      ['attn-3d', {}],
    ] as const) {
      const headDir = join(tmp, `file-${name}`);
      await importCuriaHead(join(headsDir!, name), headDir, opts);
      const vec = await readSafetensors(join(headsDir!, name, 'vectors.safetensors'));
      const inPath = join(tmp, `${name}-in.safetensors`);
      const outPath = join(tmp, `${name}-out.safetensors`);
      await writeSafetensors(
        inPath,
        [...vec.tensors].filter(([k]) => k === 'pixel_values' || k === 'mask'),
      );
      await runHeadFile({ headDir, modelBundleDir: join(tmp, 'bundle'), inPath, outPath, engine });
      const out = await readSafetensors(outPath);
      const got = toFloat32(out.tensors.get('logits')!);
      const want = toFloat32(vec.tensors.get('logits')!);
      expect(out.tensors.get('logits')!.shape).toEqual(vec.tensors.get('logits')!.shape);
      expect(out.tensors.has('probabilities')).toBe(true);
      expect(Math.max(...got.map((v, i) => Math.abs(v - want[i]!)))).toBeLessThanOrEqual(1e-4);
      expect(JSON.parse(out.metadata.labels!)).toHaveLength(got.length / (name === 'attn-3d' ? 1 : 5));
    }
    // A mask head without a mask in the file is rejected.
    const noMask = join(tmp, 'no-mask.safetensors');
    const px = await readSafetensors(join(headsDir!, 'cls-linear-2d', 'vectors.safetensors'));
    await writeSafetensors(noMask, [['pixel_values', px.tensors.get('pixel_values')!]]);
    await expect(
      runHeadFile({
        headDir: join(tmp, 'file-mask-linear-2d'),
        modelBundleDir: '',
        inPath: noMask,
        outPath: join(tmp, 'x.safetensors'),
        engine,
      }),
    ).rejects.toThrow(/requires a 'mask' tensor/);
  });

  it('negative controls: post-LN tokens or no slice positions break attn-3d parity', async () => {
    const ref = await readCuriaHead(join(headsDir!, 'attn-3d'));
    const vec = await SafetensorsFile.open(join(headsDir!, 'attn-3d', 'vectors.safetensors'));
    const px = await vec.read('pixel_values');
    const tokens = await engine.run(toFloat32(px), px.shape[0]!, {
      outputs: ['last_hidden_state', 'last_block_prenorm'],
    });
    const expected = toFloat32(await vec.read('logits'));
    const diff = async (h: Head): Promise<number> => {
      const out = await h.run(computeHeadFeatures(h.requirements(), tokens));
      return Math.max(...out.logits.map((v, i) => Math.abs(v - expected[i]!)));
    };
    expect(await diff(ref)).toBeLessThanOrEqual(1e-4);
    const post = new Head(
      {
        ...ref.meta,
        requirements: {
          ...ref.meta.requirements,
          inputs: [{ kind: 'avg_pooled_tokens', k: 4, norm: 'post' }],
        },
      },
      ref.weights,
    );
    const noPe = new Head(
      { ...ref.meta, architecture: { ...ref.meta.architecture, slice_position_embedding: false } },
      ref.weights,
    );
    const dPost = await diff(post);
    const dNoPe = await diff(noPe);
    console.log(
      `negative controls: post-LN tokens ${dPost.toExponential(2)}, no slice positions ${dNoPe.toExponential(2)}`,
    );
    expect(dPost).toBeGreaterThan(1e-3);
    expect(dNoPe).toBeGreaterThan(1e-3);
  });
});
