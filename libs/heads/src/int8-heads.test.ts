import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { buildBundleFromHf, EmbedEngine, featureSpaceOf } from '@curia/model';
import { SafetensorsFile, sharedPathOrSkip, toFloat32 } from '@curia/tensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { computeHeadFeatures, embedOutputsFor } from './features.js';
import { checkBackboneCompatibility, loadHead, type Head } from './head.js';
import { importCuriaHead, type ImportCuriaOptions } from './import-curia.js';

const tinyDir = sharedPathOrSkip('reference/dinov2/tiny-mlp');
const headsDir = sharedPathOrSkip('reference/heads');
const preprocessDir = sharedPathOrSkip('reference/preprocess');

/** Row-wise argmax of a (rows, outputs) logits array. */
function argmax(logits: Float32Array, outputs: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < logits.length / outputs; r++) {
    let best = 0;
    for (let c = 1; c < outputs; c++) if (logits[r * outputs + c]! > logits[r * outputs + best]!) best = c;
    out.push(best);
  }
  return out;
}

describe.runIf(tinyDir && headsDir && preprocessDir)(
  'shared Curia heads on the INT8 derivative of their backbone (tiny-mlp)',
  () => {
    let tmp = '';
    const engines: { f32?: EmbedEngine; int8?: EmbedEngine } = {};
    beforeAll(async () => {
      tmp = await mkdtemp(join(tmpdir(), 'curia-heads-int8-'));
      const f32 = await buildBundleFromHf(tinyDir!, join(tmp, 'f32'));
      const int8 = await buildBundleFromHf(tinyDir!, join(tmp, 'int8'), { quantize: 'int8' });
      expect(featureSpaceOf(int8.manifest)).toBe(featureSpaceOf(f32.manifest));
      engines.f32 = await EmbedEngine.open(f32.dir, { intraOpThreads: 2 });
      engines.int8 = await EmbedEngine.open(int8.dir, { intraOpThreads: 2 });
    });
    afterAll(async () => {
      await engines.f32?.close();
      await engines.int8?.close();
      await rm(tmp, { recursive: true, force: true });
    });

    /** Logits of `head` on `px` (batch slices; one volume for attention-3d) through both backbones. */
    async function logitsOn(
      head: Head,
      px: Float32Array,
      batch: number,
      mask?: Float32Array,
    ): Promise<{ f32: Float32Array; int8: Float32Array; outputs: number }> {
      const out: Float32Array[] = [];
      let outputs = 0;
      for (const engine of [engines.f32!, engines.int8!]) {
        const tokens = await engine.run(px, batch, { outputs: embedOutputsFor(head.requirements()) });
        const m = mask ? { data: mask, height: 512, width: 512 } : undefined;
        const res = await head.run(computeHeadFeatures(head.requirements(), tokens, m));
        out.push(res.logits);
        outputs = res.outputs;
      }
      return { f32: out[0]!, int8: out[1]!, outputs };
    }

    const cases: [string, ImportCuriaOptions][] = [
      ['cls-linear-2d', { input: 'cls' }],
      ['mask-linear-2d', { input: 'mask' }],
      ['attn-3d', {}],
    ];
    it.each(cases)('%s: same argmax as on F32 for every shared slice', async (name, opts) => {
      const dir = join(tmp, `head-${name}`);
      await importCuriaHead(join(headsDir!, name), dir, opts);
      const head = await loadHead(dir);
      // Fitted on the F32 bundle, the head accepts its INT8 derivative's backbone.
      checkBackboneCompatibility(head, engines.int8!.bundle.manifest.architecture);
      // Inputs: the head's own reference inputs, plus (masks exist only there) the 12 shared
      // preprocessed slices — per slice for 2D heads, each case as one volume for attn-3d.
      const vec = await SafetensorsFile.open(join(headsDir!, name, 'vectors.safetensors'));
      const px = await vec.read('pixel_values');
      const inputs: { label: string; px: Float32Array; batch: number; mask?: Float32Array }[] = [
        {
          label: 'reference inputs',
          px: toFloat32(px),
          batch: px.shape[0]!,
          ...(vec.names().includes('mask') ? { mask: toFloat32(await vec.read('mask')) } : {}),
        },
      ];
      if (name !== 'mask-linear-2d') {
        for (const c of ['example_ct_sm', 'example_ct_dicom', 'example_mr_sm', 'example_ct_sm_clip']) {
          const t = await (
            await SafetensorsFile.open(join(preprocessDir!, `${c}.safetensors`))
          ).read('pixel_values');
          inputs.push({ label: c, px: toFloat32(t), batch: t.shape[0]! });
        }
      }
      let rows = 0;
      let maxDiff = 0;
      for (const inp of inputs) {
        const r = await logitsOn(head, inp.px, inp.batch, inp.mask);
        for (let i = 0; i < r.f32.length; i++) maxDiff = Math.max(maxDiff, Math.abs(r.f32[i]! - r.int8[i]!));
        expect(argmax(r.int8, r.outputs), `${name} on ${inp.label}`).toEqual(argmax(r.f32, r.outputs));
        rows += r.f32.length / r.outputs;
      }
      console.log(
        `${name}: INT8 vs F32 backbone, same argmax on ${rows} predictions (${inputs.map((i) => i.label).join(', ')}), max |logit diff| ${maxDiff.toExponential(2)}`,
      );
      await head.release?.();
    });
  },
);
