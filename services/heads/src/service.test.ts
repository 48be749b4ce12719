import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ClientError, Status, common, type heads } from '@curia/client';
import { computeHeadFeatures, embedOutputsFor } from '@curia/heads';
import { EmbedEngine, buildBundleFromHf, mulberry32 } from '@curia/model';
import { SafetensorsFile, sharedPathOrSkip, toFloat32 } from '@curia/tensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { f32Tensor } from './codec.js';
import { HeadStore } from './store.js';
import { fitStream } from './testing/fit-stream.js';
import { startHeadsServer, type RunningHeads } from './testing/start-server.js';
import { sliceFeaturesOf } from './wire-features.js';

const tinyDir = sharedPathOrSkip('reference/dinov2/tiny-mlp');
const headsDir = sharedPathOrSkip('reference/heads');

/** Two Gaussian-ish blobs in `d` dims, separated along every axis: (features, class). */
function separable(n: number, d: number, seed: number): { x: Float32Array[]; y: number[] } {
  const r = mulberry32(seed);
  const x: Float32Array[] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % 2;
    x.push(Float32Array.from({ length: d }, () => (c ? 1.5 : -1.5) + (r() - 0.5)));
    y.push(c);
  }
  return { x, y };
}

const classSamples = (x: Float32Array[], y: number[]): heads.FitSample[] =>
  x.map((v, i) => ({ features: f32Tensor(v, [v.length]), label: { $case: 'classIndex', value: y[i]! } }));

/** Awaits a call that must fail with `code` and a message matching `re`. */
async function expectError(call: Promise<unknown>, code: Status, re: RegExp): Promise<void> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ClientError);
  expect((err as ClientError).code).toBe(code);
  expect((err as ClientError).details).toMatch(re);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

// Copy first: decoded bytes are views into a Buffer pool (see codec.ts).
const tensorValues = (t: common.Tensor | undefined): Float32Array =>
  toFloat32({ dtype: 'F32', shape: t!.shape, data: new Uint8Array(t!.data) });

describe.runIf(tinyDir && headsDir)('HeadsService over gRPC (real server, real ORT features)', () => {
  let tmp = '';
  let engine: EmbedEngine;
  let svc: RunningHeads;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'curia-heads-svc-'));
    await buildBundleFromHf(tinyDir!, join(tmp, 'bundle'));
    engine = await EmbedEngine.open(join(tmp, 'bundle'), { intraOpThreads: 2 });
    svc = await startHeadsServer({
      CURIA_HEADS_DIR: join(tmp, 'store'),
      CURIA_HEADS_IMPORT: ['cls-linear-2d', 'mask-linear-2d#mask', 'attn-3d']
        .map((h) => join(headsDir!, h))
        .join(','),
      CURIA_HEADS_MAX_FIT_SAMPLES: '500',
    });
  });
  afterAll(async () => {
    await svc?.close();
    await engine?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('lists the three imported Curia heads with their requirements', async () => {
    const { heads: list } = await svc.client.listHeads({});
    expect(list.map((h) => `${h.name}@${h.version}`)).toEqual([
      'attn-3d@1',
      'cls-linear-2d@1',
      'mask-linear-2d@1',
    ]);
    const attn = list[0]!;
    expect(attn.requirements?.level).toBe(common.HeadInputLevel.VOLUME);
    expect(attn.requirements?.features[0]?.kind).toEqual({
      $case: 'avgPooledTokens',
      value: { kernelSize: 4, prenorm: true },
    });
    expect(list[2]!.requirements?.requiresMask).toBe(true);
    const info = await svc.client.getInfo({});
    expect(info.info?.heads).toHaveLength(3);
    expect(info.info?.limits.max_fit_samples).toBe('500');
  });

  for (const name of ['cls-linear-2d', 'mask-linear-2d', 'attn-3d']) {
    it(`Predict ${name}: logits within 1e-4 of the PyTorch reference`, async () => {
      const head = svc.store.get(name).head;
      const vec = await SafetensorsFile.open(join(headsDir!, name, 'vectors.safetensors'));
      const px = await vec.read('pixel_values');
      const tokens = await engine.run(toFloat32(px), px.shape[0]!, {
        outputs: embedOutputsFor(head.requirements()),
      });
      const mask = vec.names().includes('mask')
        ? { data: toFloat32(await vec.read('mask')), height: px.shape[2]!, width: px.shape[3]! }
        : undefined;
      const features = computeHeadFeatures(head.requirements(), tokens, mask);
      const res = await svc.client.predict({
        head: name,
        slices: sliceFeaturesOf(head, features, [10, 11, 12, 13, 14]),
      });
      const expected = toFloat32(await vec.read('logits'));
      const k = expected.length / (name === 'attn-3d' ? 1 : 5);
      let got: Float32Array;
      if (name === 'attn-3d') {
        expect(res.slices).toHaveLength(0);
        got = tensorValues(res.prediction?.logits);
      } else {
        expect(res.slices.map((s) => s.sliceId)).toEqual([10, 11, 12, 13, 14]);
        got = new Float32Array(expected.length);
        res.slices.forEach((s, i) => got.set(tensorValues(s.prediction?.logits), i * k));
        const p = tensorValues(res.slices[0]!.prediction?.probabilities);
        expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      }
      const diff = maxDiff(got, expected);
      console.log(`${name}: max |logits - reference| via gRPC = ${diff.toExponential(3)}`);
      expect(got.length).toBe(expected.length);
      expect(diff).toBeLessThanOrEqual(1e-4);
      expect(res.prediction?.labels).toHaveLength(k);
      expect(res.head?.version).toBe('1');
    });
  }

  it('Predict rejects bad features precisely and unknown heads with NOT_FOUND', async () => {
    const d = 96;
    const good = (v: Float32Array) => [
      { sliceId: 7, features: [{ requestIndex: 0, tensor: f32Tensor(v, [d]) }] },
    ];
    await expectError(
      svc.client.predict({ head: 'nope', slices: good(new Float32Array(d)) }),
      Status.NOT_FOUND,
      /no head named 'nope'/,
    );
    await expect(
      svc.client.predict({ head: 'cls-linear-2d@9', slices: good(new Float32Array(d)) }),
    ).rejects.toMatchObject({ code: Status.NOT_FOUND });
    const nan = new Float32Array(d);
    nan[3] = NaN;
    await expectError(
      svc.client.predict({ head: 'cls-linear-2d', slices: good(nan) }),
      Status.INVALID_ARGUMENT,
      /slice_id 7.*request_index 0.*NaN/,
    );
    await expectError(
      svc.client.predict({
        head: 'cls-linear-2d',
        slices: [
          { sliceId: 1, features: [{ requestIndex: 0, tensor: f32Tensor(new Float32Array(8), [8]) }] },
        ],
      }),
      Status.INVALID_ARGUMENT,
      /shape \[8\]/,
    );
    await expectError(
      svc.client.predict({ head: 'cls-linear-2d', slices: [{ sliceId: 2, features: [] }] }),
      Status.INVALID_ARGUMENT,
      /lacks/,
    );
    const f16 = { dtype: common.DType.I32, shape: [d], data: new Uint8Array(d * 4) };
    await expectError(
      svc.client.predict({
        head: 'cls-linear-2d',
        slices: [{ sliceId: 0, features: [{ requestIndex: 0, tensor: f16 }] }],
      }),
      Status.INVALID_ARGUMENT,
      /dtype/,
    );
    await expect(svc.client.getHead({ name: 'missing' })).rejects.toMatchObject({ code: Status.NOT_FOUND });
    await expect(svc.client.getHead({ name: '' })).rejects.toMatchObject({ code: Status.INVALID_ARGUMENT });
    // Failures are counted by method and status, and Predict calls by head and status.
    const text = await svc.server.metrics.registry.metrics();
    expect(text).toMatch(/curia_heads_errors_total\{[^}]*method="Predict"[^}]*reason="NOT_FOUND"[^}]*\} 2/);
    expect(text).toMatch(
      /curia_heads_errors_total\{[^}]*method="GetHead"[^}]*reason="INVALID_ARGUMENT"[^}]*\} 1/,
    );
    expect(text).toMatch(
      /curia_heads_predict_total\{[^}]*head="cls-linear-2d"[^}]*code="INVALID_ARGUMENT"[^}]*\} 4/,
    );
  });

  it('Fit logistic via gRPC: new version served at once, idempotency key reuses it, survives a restart', async () => {
    const d = 96;
    const { x, y } = separable(60, d, 1);
    const start = { head: 'toy-sep', labelNames: ['neg', 'pos'], idempotencyKey: 'k-1', options: undefined };
    const res = await svc.client.fit(fitStream(start, classSamples(x, y)));
    expect(res.head?.name).toBe('toy-sep');
    expect(res.head?.version).toBe('1');
    expect(res.head?.labels).toEqual(['neg', 'pos']);
    expect(res.training?.numSamples).toBe(60);
    expect(res.training?.classCounts).toEqual([30, 30]);
    expect(res.training?.cv?.folds).toHaveLength(5);
    expect(res.training?.cv?.mean?.accuracy).toBeGreaterThan(0.95);

    const again = await svc.client.fit(fitStream(start, classSamples(x, y)));
    expect(again.head?.version).toBe('1');
    const other = await svc.client.fit(
      fitStream({ ...start, idempotencyKey: 'k-2', promote: true }, classSamples(x, y)),
    );
    expect(other.head?.version).toBe('2');

    const { heads: all } = await svc.client.listHeads({ allVersions: true });
    expect(all.filter((h) => h.name === 'toy-sep').map((h) => h.version)).toEqual(['1', '2']);

    const test = separable(10, d, 99);
    const pred = await svc.client.predict({
      head: 'toy-sep@1',
      model: 'tiny-mlp@1',
      slices: test.x.map((v, i) => ({
        sliceId: i,
        features: [{ requestIndex: 0, tensor: f32Tensor(v, [d]) }],
      })),
    });
    expect(pred.slices.map((s) => s.prediction?.predictedIndex)).toEqual(test.y);
    await expect(svc.client.predict({ head: 'toy-sep', model: 'other@1', slices: [] })).rejects.toMatchObject(
      { code: Status.FAILED_PRECONDITION },
    );

    const g = await svc.client.getHead({ name: 'toy-sep', version: '1' });
    expect(g.training?.dataset).toBe('synthetic');
    expect(g.training?.options?.folds).toBe(5);

    // A fresh store over the same directory sees both versions and the idempotency keys.
    const reopened = await HeadStore.open(svc.store.root!);
    expect(reopened.get('toy-sep').head.meta.version).toBe('2');
    expect(reopened.byIdempotencyKey('k-1')?.head.meta.version).toBe('1');
  });

  it('Fit validation: one class, NaN, bad stream and too many samples', async () => {
    const d = 8;
    const { x } = separable(20, d, 3);
    const one = classSamples(
      x,
      x.map(() => 0),
    );
    await expectError(
      svc.client.fit(fitStream({ head: 'bad' }, one)),
      Status.INVALID_ARGUMENT,
      /single class/,
    );
    const nan = classSamples(
      x,
      x.map((_, i) => i % 2),
    );
    nan[4] = {
      ...nan[4]!,
      features: f32Tensor(
        Float32Array.from({ length: d }, () => NaN),
        [d],
      ),
    };
    await expectError(
      svc.client.fit(fitStream({ head: 'bad' }, nan)),
      Status.INVALID_ARGUMENT,
      /samples\[4\]\.features.*NaN/,
    );
    await expectError(
      svc.client.fit(
        fitStream(
          { head: 'Bad Name!' },
          classSamples(
            x,
            x.map((_, i) => i % 2),
          ),
        ),
      ),
      Status.INVALID_ARGUMENT,
      /start.head/,
    );
    await expectError(
      svc.client.fit(
        fitStream(
          { head: 'bad', kind: common.HeadKind.COX },
          classSamples(
            x,
            x.map((_, i) => i % 2),
          ),
        ),
      ),
      Status.INVALID_ARGUMENT,
      /start.kind/,
    );
    const many = separable(501, d, 4);
    await expectError(
      svc.client.fit(fitStream({ head: 'bad' }, classSamples(many.x, many.y), 100)),
      Status.RESOURCE_EXHAUSTED,
      /more than 500 samples/,
    );
    const { heads: list } = await svc.client.listHeads({});
    expect(list.some((h) => h.name === 'bad')).toBe(false);
  });

  it('Fit Cox via gRPC returns a c-index and Predict gives risk and a survival curve', async () => {
    const d = 4;
    const r = mulberry32(7);
    const samples: heads.FitSample[] = [];
    for (let i = 0; i < 80; i++) {
      const v = Float32Array.from({ length: d }, () => r() * 2 - 1);
      const hazard = Math.exp(1.5 * v[0]!);
      const time = -Math.log(1 - r() * 0.999) / hazard;
      samples.push({
        features: f32Tensor(v, [d]),
        label: { $case: 'survival', value: { time, event: i % 4 !== 0 } },
      });
    }
    const res = await svc.client.fit(
      fitStream(
        { head: 'toy-cox', kind: common.HeadKind.COX, task: common.HeadTask.SURVIVAL, unit: 'd' },
        samples,
      ),
    );
    const c = res.training?.cv?.mean?.cIndex;
    console.log(`Cox fit via gRPC: CV c-index ${c?.toFixed(3)}`);
    expect(c).toBeGreaterThan(0.6);
    expect(res.training?.classCounts).toEqual([20, 60]);
    const pred = await svc.client.predict({
      head: 'toy-cox',
      survivalTimes: [0.1, 0.5, 1, 2],
      slices: [{ sliceId: 0, features: [{ requestIndex: 0, tensor: f32Tensor([1, 0, 0, 0], [d]) }] }],
    });
    const s = pred.prediction?.survival;
    expect(s?.times).toEqual([0.1, 0.5, 1, 2]);
    expect(s?.values.every((v, i) => v <= 1 && v >= 0 && (i === 0 || v <= s.values[i - 1]!))).toBe(true);
    expect(pred.prediction?.riskScore).toBeTypeOf('number');
    // S(t) = exp(−H0(t)·e^risk) with H0 the stored Breslow step function, computed by hand here.
    const stored = svc.store.get('toy-cox').head;
    const bt = stored.weight('cox.baseline_times').data;
    const h0 = stored.weight('cox.baseline_cumhaz').data;
    const w = stored.weight('cox.weight').data;
    const risk = w[0]! + stored.weight('cox.bias').data[0]!;
    expect(pred.prediction?.riskScore).toBeCloseTo(risk, 5);
    [0.1, 0.5, 1, 2].forEach((t, i) => {
      let h = 0;
      for (let j = 0; j < bt.length; j++) if (bt[j]! <= t) h = h0[j]!;
      expect(s!.values[i]).toBeCloseTo(Math.exp(-h * Math.exp(risk)), 6);
    });
    await expectError(
      svc.client.predict({
        head: 'toy-cox',
        survivalTimes: [2, 1],
        slices: [{ sliceId: 0, features: [{ requestIndex: 0, tensor: f32Tensor([1, 0, 0, 0], [d]) }] }],
      }),
      Status.INVALID_ARGUMENT,
      /survival_times\[1\]/,
    );
  });

  it('Fit MULTILABEL via gRPC: one sigmoid per label, per-label probabilities from Predict', async () => {
    const d = 6;
    const r = mulberry32(21);
    const n = 90;
    const samples: heads.FitSample[] = [];
    for (let i = 0; i < n; i++) {
      const v = Float32Array.from({ length: d }, () => r() * 2 - 1);
      const positiveIndices = [0, 1, 2].filter((l) => v[l]! + 0.2 * (r() - 0.5) > 0);
      samples.push({
        features: f32Tensor(v, [d]),
        label: { $case: 'multilabel', value: { positiveIndices } },
      });
    }
    const start = {
      head: 'toy-multilabel',
      task: common.HeadTask.MULTILABEL,
      labelNames: ['liver', 'spleen', 'kidney'],
      options: { folds: 3, classWeight: 0, hiddenLayerSizes: [], maxIterations: 0, ties: 0 },
    };
    const res = await svc.client.fit(fitStream(start, samples));
    expect(res.head?.task).toBe(common.HeadTask.MULTILABEL);
    expect(res.head?.labels).toEqual(['liver', 'spleen', 'kidney']);
    const cv = res.training!.cv!;
    console.log(
      `multilabel via gRPC: CV mean AUC ${cv.mean?.auc?.toFixed(3)}, accuracy ${cv.mean?.accuracy?.toFixed(3)}`,
    );
    expect(cv.mean?.auc).toBeGreaterThan(0.9);
    expect(cv.folds.reduce((a, f) => a + f.numTest, 0)).toBe(n);
    for (const f of cv.folds) expect(f.numTrain + f.numTest).toBe(n);

    const pred = await svc.client.predict({
      head: 'toy-multilabel',
      slices: [
        { sliceId: 4, features: [{ requestIndex: 0, tensor: f32Tensor([0.9, 0.9, -0.9, 0, 0, 0], [d]) }] },
      ],
    });
    const p = pred.slices[0]!.prediction!;
    const logits = tensorValues(p.logits);
    const probs = tensorValues(p.probabilities);
    expect(p.labels).toEqual(['liver', 'spleen', 'kidney']);
    expect(p.predictedIndex).toBeUndefined();
    for (let l = 0; l < 3; l++) expect(probs[l]).toBeCloseTo(1 / (1 + Math.exp(-logits[l]!)), 6);
    expect(probs[0]).toBeGreaterThan(0.5);
    expect(probs[1]).toBeGreaterThan(0.5);
    expect(probs[2]).toBeLessThan(0.5);
    // Per-head metrics: Predict calls counted by head and status, latency histogram labelled by head.
    const text = await svc.server.metrics.registry.metrics();
    expect(text).toMatch(/curia_heads_predict_total\{[^}]*head="toy-multilabel"[^}]*code="OK"[^}]*\} 1/);
    expect(text).toMatch(/curia_heads_predict_seconds_count\{[^}]*head="toy-multilabel"[^}]*\} 1/);

    await expectError(
      svc.client.fit(fitStream({ ...start, labelNames: [] }, samples)),
      Status.INVALID_ARGUMENT,
      /label_names is required for MULTILABEL/,
    );
    const bad = [...samples];
    bad[3] = { ...bad[3]!, label: { $case: 'multilabel', value: { positiveIndices: [5] } } };
    await expectError(
      svc.client.fit(fitStream(start, bad)),
      Status.INVALID_ARGUMENT,
      /samples\[3\]\.multilabel\.positive_indices has 5/,
    );
    bad[3] = { ...bad[3], label: { $case: 'classIndex', value: 0 } };
    await expectError(
      svc.client.fit(fitStream(start, bad)),
      Status.INVALID_ARGUMENT,
      /samples\[3\]\.label must be multilabel/,
    );
    await expectError(
      svc.client.fit(fitStream({ ...start, kind: common.HeadKind.MLP_CLASSIFIER }, samples)),
      Status.UNIMPLEMENTED,
      /MLP_CLASSIFIER with start.task MULTILABEL/,
    );
  });

  it('Fit records the trained feature and slice selection as the head requirements', async () => {
    const d = 8;
    const { x, y } = separable(40, d, 9);
    const cases: [string, common.FeatureRequest, object][] = [
      [
        'fit-mask-pre',
        { kind: { $case: 'maskPooled', value: { prenorm: true } }, dtype: common.DType.F32 },
        { $case: 'maskPooled', value: { prenorm: true } },
      ],
      [
        'fit-cls-pre',
        { kind: { $case: 'cls', value: { prenorm: true } }, dtype: common.DType.F32 },
        { $case: 'cls', value: { prenorm: true } },
      ],
      [
        'fit-global-mean',
        {
          kind: { $case: 'avgPooledTokens', value: { kernelSize: 0, prenorm: true } },
          dtype: common.DType.F32,
        },
        { $case: 'avgPooledTokens', value: { kernelSize: 0, prenorm: true } },
      ],
    ];
    for (const [head, feature, wire] of cases) {
      const res = await svc.client.fit(
        fitStream(
          {
            head,
            feature,
            requirements: {
              features: [],
              slices: { selection: { $case: 'centralCount', value: 8 } },
              level: common.HeadInputLevel.SLICE,
              requiresMask: false,
            },
          },
          classSamples(x, y),
        ),
      );
      const req = (await svc.client.getHead({ name: head })).head!.requirements!;
      expect(res.head?.requirements).toEqual(req);
      expect(req.features.map((f) => f.kind)).toEqual([wire]);
      expect(req.slices?.selection).toEqual({ $case: 'centralCount', value: 8 });
      expect(req.requiresMask).toBe(head === 'fit-mask-pre');
      expect(req.level).toBe(common.HeadInputLevel.SLICE);
      // Predict takes the (D) vectors the requirement describes.
      const pred = await svc.client.predict({
        head,
        slices: [{ sliceId: 0, features: [{ requestIndex: 0, tensor: f32Tensor(x[1]!, [d]) }] }],
      });
      expect(pred.slices[0]!.prediction!.predictedIndex).toBe(y[1]);
    }
    await expectError(
      svc.client.fit(
        fitStream(
          {
            head: 'bad',
            feature: {
              kind: { $case: 'avgPooledTokens', value: { kernelSize: 4, prenorm: true } },
              dtype: common.DType.F32,
            },
          },
          classSamples(x, y),
        ),
      ),
      Status.INVALID_ARGUMENT,
      /avg_pooled_tokens.kernel_size must be 0/,
    );
  });

  it('serves a Curia 3D head on the pre-LayerNorm CLS token, asking for it on the wire', async () => {
    const dir = join(tmp, 'curia-cls-token');
    await mkdir(dir, { recursive: true });
    const cfg = JSON.parse(await readFile(join(headsDir!, 'attn-3d', 'config.json'), 'utf8')) as object;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...cfg, use_class_token: true }));
    await symlink(join(headsDir!, 'attn-3d', 'model.safetensors'), join(dir, 'model.safetensors'));
    await svc.store.importCuria(dir);
    const req = (await svc.client.getHead({ name: 'curia-cls-token' })).head!.requirements!;
    expect(req.features.map((f) => f.kind)).toContainEqual({ $case: 'cls', value: { prenorm: true } });
  });

  it('a Fit past its deadline stops and stores nothing', async () => {
    const d = 96;
    const { x, y } = separable(400, d, 5);
    const t0 = Date.now();
    const err = await svc.client
      .fit(
        fitStream(
          {
            head: 'slow-mlp',
            kind: common.HeadKind.MLP_CLASSIFIER,
            options: { folds: 20, hiddenLayerSizes: [512], maxIterations: 5000, classWeight: 0, ties: 0 },
          },
          classSamples(x, y),
          100,
        ),
        { deadline: new Date(Date.now() + 400) },
      )
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: Status.DEADLINE_EXCEEDED });
    await new Promise((r) => setTimeout(r, 300));
    expect(Date.now() - t0).toBeLessThan(5000);
    const { heads: list } = await svc.client.listHeads({});
    expect(list.some((h) => h.name === 'slow-mlp')).toBe(false);
  });
});
