import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { SafetensorsFile, sharedPathOrSkip, toFloat32 } from '@curia/tensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { buildBundleFromHf, buildRandomBundle, type BuiltBundle } from './bundle/build.js';
import { compareTokens, FIDELITY_THRESHOLDS } from './bundle/fidelity.js';
import { featureSpaceOf } from './bundle/manifest.js';
import { describeInt8CpuFeatures, int8CpuFeatures } from './cpu-features.js';
import { EmbedEngine } from './engine.js';
import { quantizeLinearWeight } from './onnx/dinov2-graph.js';
import { expectCuriaError, tempDir } from './test-support/tmp.js';

/** The shared preprocessed real slices (CT NIfTI, CT DICOM, MR, CT clipped): 12 slices in all. */
const SHARED_CASES = ['example_ct_sm', 'example_ct_dicom', 'example_mr_sm', 'example_ct_sm_clip'];

async function sharedSlices(): Promise<{ pixels: Float32Array; count: number } | null> {
  const parts: Float32Array[] = [];
  for (const c of SHARED_CASES) {
    const path = sharedPathOrSkip(`reference/preprocess/${c}.safetensors`);
    if (!path) return null;
    parts.push(toFloat32(await (await SafetensorsFile.open(path)).read('pixel_values')));
  }
  const pixels = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    pixels.set(p, at);
    at += p.length;
  }
  return { pixels, count: pixels.length / (512 * 512) };
}

/** last_hidden_state of every slice, one slice per run. */
async function embedAll(
  dir: string,
  px: { pixels: Float32Array; count: number },
): Promise<{
  lhs: Float32Array;
  layout: { tokens: number; hidden: number; numRegisterTokens: number };
}> {
  const engine = await EmbedEngine.open(dir, { intraOpThreads: 2 });
  try {
    const r = await engine.run(px.pixels, px.count);
    return { lhs: r.lastHiddenState!, layout: r };
  } finally {
    await engine.close();
  }
}

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await tempDir('int8');
});
afterAll(async () => {
  await tmp.cleanup();
});

describe('per-channel symmetric INT8 weights', () => {
  it('scales each output channel by max|w|/127 and transposes to [in, out]', () => {
    // W [out = 2, in = 3]
    const w = Float32Array.of(0.5, -1, 0.25, 0, 0, 0);
    const { q, scale } = quantizeLinearWeight(w, 2, 3);
    expect([...scale]).toEqual([Math.fround(1 / 127), 1]);
    // column 0 = channel 0: 0.5·127 → 64 (63.5 rounds up), −127, 31.75 → 32; channel 1 all zero.
    expect([...q]).toEqual([64, 0, -127, 0, 32, 0]);
  });
});

describe('host INT8 CPU features', () => {
  it('reads the VNNI/AMX flags and the model name from a cpuinfo file', async () => {
    const path = join(tmp.dir, 'cpuinfo');
    await writeFile(
      path,
      'processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 avx512f avx512_vnni sse\n\n',
    );
    const f = int8CpuFeatures(path);
    expect(f).toEqual({ model: 'Test CPU', present: ['avx2', 'avx512f', 'avx512_vnni'] });
    expect(describeInt8CpuFeatures(f)).toBe(
      'Test CPU: avx2 yes, avx512f yes, avx512_vnni yes, avx_vnni no, amx_int8 no',
    );
    expect(int8CpuFeatures(join(tmp.dir, 'absent')).present).toBeNull();
  });
});

describe('INT8 bundles: build-time fidelity, feature space and fidelity on the shared slices', () => {
  const cases: [string, () => Promise<[BuiltBundle, BuiltBundle] | null>][] = [
    ...['tiny-mlp', 'tiny-swiglu'].map((v): [string, () => Promise<[BuiltBundle, BuiltBundle] | null>] => [
      `reference backbone ${v}`,
      async () => {
        const hf = sharedPathOrSkip(`reference/dinov2/${v}`);
        if (!hf) return null;
        return [
          await buildBundleFromHf(hf, join(tmp.dir, `${v}-f32`)),
          await buildBundleFromHf(hf, join(tmp.dir, `${v}-int8`), { quantize: 'int8' }),
        ];
      },
    ]),
    [
      // ViT-B: ~90 s to build both bundles and ~2 min of CPU over the 12 slices on 2 cores, so opt-in.
      'curia-b preset',
      async () => {
        if (process.env.CURIA_TEST_CURIA_B !== '1') {
          console.warn('SKIP: curia-b INT8 fidelity runs only with CURIA_TEST_CURIA_B=1 (minutes of CPU)');
          return null;
        }
        return [
          await buildRandomBundle(join(tmp.dir, 'b-f32'), { preset: 'curia-b' }),
          await buildRandomBundle(join(tmp.dir, 'b-int8'), { preset: 'curia-b', quantize: 'int8' }),
        ];
      },
    ],
    [
      'demo preset',
      async () => [
        await buildRandomBundle(join(tmp.dir, 'demo-f32'), { preset: 'demo' }),
        await buildRandomBundle(join(tmp.dir, 'demo-int8'), { preset: 'demo', quantize: 'int8' }),
      ],
    ],
  ];
  it.each(cases)(
    '%s',
    async (label, build) => {
      const built = await build();
      if (!built) return;
      const [f32, int8] = built;
      const q = int8.manifest.quantization!;
      // Provenance: derived from exactly the F32 bundle built from the same weights, same feature space.
      expect(q.source_sha256).toBe(f32.manifest.sha256);
      expect(featureSpaceOf(int8.manifest)).toBe(featureSpaceOf(f32.manifest));
      expect(f32.manifest.feature_space).toBe(f32.manifest.sha256);
      expect(int8.manifest.sha256).not.toBe(f32.manifest.sha256);
      expect([int8.manifest.name, int8.manifest.version]).toEqual([f32.manifest.name, '1-int8']);
      expect(int8.manifest.model_bytes).toBeLessThan(f32.manifest.model_bytes);
      const onDisk = JSON.parse(
        await readFile(join(int8.dir, 'bundle.json'), 'utf8'),
      ) as typeof int8.manifest;
      expect(onDisk.quantization?.fidelity.calibration).toBe(
        sharedPathOrSkip(`reference/preprocess/example_ct_sm.safetensors`) ? 'shared_ct' : 'synthetic',
      );

      const px = await sharedSlices();
      if (!px) return;
      const ref = await embedAll(f32.dir, px);
      const got = await embedAll(int8.dir, px);
      const c = compareTokens(ref.lhs, got.lhs, ref.layout);
      const clsMin = Math.min(...c.clsCosines);
      console.log(
        `${label} INT8 vs F32 on ${px.count} shared slices (CT, CT DICOM, MR, CT clipped): CLS cosine min ${clsMin.toFixed(5)}, ` +
          `patch cosine mean ${c.patchCosineMean.toFixed(5)}, max |diff| ${c.maxAbsDiff.toExponential(2)}; ` +
          `build-time (${q.fidelity.slices} ${q.fidelity.calibration} slices): CLS min ${q.fidelity.cls_cosine_min.toFixed(5)}, patch mean ${q.fidelity.patch_cosine_mean.toFixed(5)}`,
      );
      expect(clsMin).toBeGreaterThanOrEqual(FIDELITY_THRESHOLDS.cls_cosine_min);
      expect(c.patchCosineMean).toBeGreaterThanOrEqual(FIDELITY_THRESHOLDS.patch_cosine_mean);
    },
    1_200_000,
  );

  it('quantizes the standard-ops attention graph too, and refuses F16 with INT8', async () => {
    const out = join(tmp.dir, 'std-int8');
    const b = await buildRandomBundle(out, { preset: 'tiny', attention: 'standard', quantize: 'int8' });
    expect(b.manifest.attention).toBe('standard');
    expect(b.manifest.version).toBe('1-int8');
    const v2 = await buildRandomBundle(join(tmp.dir, 'v2'), {
      preset: 'tiny',
      version: '2',
      quantize: 'int8',
    });
    expect(v2.manifest.version).toBe('2-int8');
    expect(b.manifest.quantization!.fidelity.cls_cosine_min).toBeGreaterThanOrEqual(0.995);
    await expectCuriaError(
      () => buildRandomBundle(join(tmp.dir, 'x'), { preset: 'tiny', ioDtype: 'f16', quantize: 'int8' }),
      'INVALID_ARGUMENT',
      /needs dtype and io_dtype f32/,
    );
  });

  it('refuses a bundle below the fidelity thresholds, with the figures', async () => {
    // Std-1 weights (50× DINOv2's init) with LayerScale 1 make the residual stream of the tiny
    // backbone explode, which per-tensor activation quantization cannot follow: a model INT8 breaks.
    const out = join(tmp.dir, 'bad-int8');
    const { randomWeights } = await import('./random-weights.js');
    const { presetArchitecture } = await import('./architecture.js');
    const { writeBundle } = await import('./bundle/build.js');
    const arch = presetArchitecture('tiny');
    const w = randomWeights(arch, { seed: 1, std: 1 });
    await expectCuriaError(
      () =>
        writeBundle(
          out,
          arch,
          w,
          {
            name: 'bad',
            version: '1',
            demo: true,
            provenance: { source: 'random', created_at: '', builder_version: '0' },
          },
          { quantize: 'int8' },
        ),
      'FAILED_PRECONDITION',
      /int8 bundle refused: .*CLS cosine min 0?\.\d+ \(needs ≥ 0\.995\), patch-token cosine mean -?\d\.\d+/,
    );
    const { existsSync } = await import('node:fs');
    expect(existsSync(join(out, 'bundle.json'))).toBe(false);
    expect(existsSync(join(out, 'model.onnx'))).toBe(false);
  });
});
