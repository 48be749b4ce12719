import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';

import {
  ClientError,
  type Metadata,
  Status,
  createCuriaChannel,
  createCuriaClient,
  type Channel,
  wireFloats,
} from '@curia/client';
import { CuriaServer, loadConfig } from '@curia/kit';
import {
  avgPoolTokens,
  buildBundleFromHf,
  buildRandomBundle,
  compareTokens,
  maskPool,
  patchTokens,
  mulberry32,
} from '@curia/model';
import { common, embed } from '@curia/proto';
import { fromFloat32, readSafetensors, sharedPathOrSkip, toFloat32 } from '@curia/tensors';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { embedEnvSchema } from './config.js';
import { setupEmbedService, type EmbedServiceHooks } from './service.js';

const S = 512;
const PX = S * S;
let tmp = '';
let randomDir = '';
let hf: {
  mlp: string;
  swiglu: string;
  px: Float32Array;
  lhs: { mlp: Float32Array; swiglu: Float32Array };
} | null = null;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'curia-embed-svc-'));
  randomDir = (await buildRandomBundle(join(tmp, 'tiny'), { preset: 'tiny', seed: 7 })).dir;
  const mlp = sharedPathOrSkip('reference/dinov2/tiny-mlp');
  const swiglu = sharedPathOrSkip('reference/dinov2/tiny-swiglu');
  if (mlp && swiglu) {
    const refM = await readSafetensors(join(mlp, 'vectors.safetensors'));
    const refS = await readSafetensors(join(swiglu, 'vectors.safetensors'));
    hf = {
      mlp: (await buildBundleFromHf(mlp, join(tmp, 'tiny-mlp'))).dir,
      swiglu: (await buildBundleFromHf(swiglu, join(tmp, 'tiny-swiglu'))).dir,
      px: toFloat32(refM.tensors.get('pixel_values')!),
      lhs: {
        mlp: toFloat32(refM.tensors.get('last_hidden_state')!),
        swiglu: toFloat32(refS.tensors.get('last_hidden_state')!),
      },
    };
  }
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

interface Running {
  server: CuriaServer;
  hooks: EmbedServiceHooks;
  ready: () => Promise<number>;
  channel: Channel;
  client: ReturnType<typeof createCuriaClient<typeof embed.EmbedServiceDefinition>>;
  metrics: () => Promise<string>;
}
const running: Running[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    r.channel.close();
    await r.server.shutdown();
    await r.hooks.close();
  }
});

async function start(env: Record<string, string>): Promise<Running> {
  const cfg = loadConfig(embedEnvSchema, {
    CURIA_GRPC_HOST: '127.0.0.1',
    CURIA_LOG_LEVEL: process.env.EMBED_TEST_LOG ?? 'silent',
    CURIA_PROCESS_METRICS: 'false',
    CURIA_SHUTDOWN_GRACE_MS: '1000',
    CURIA_EMBED_INTRA_OP_THREADS: '2',
    ...env,
  });
  const server = new CuriaServer({ name: 'embed', env: cfg });
  const hooks = await setupEmbedService(server, cfg);
  const ports = await server.start();
  await hooks.warmUp();
  server.setServing(true);
  const channel = createCuriaChannel(`127.0.0.1:${ports.grpcPort}`);
  const client = createCuriaClient(embed.EmbedServiceDefinition, channel);
  const r: Running = {
    server,
    hooks,
    channel,
    client,
    metrics: async () => (await fetch(`http://127.0.0.1:${ports.metricsPort}/metrics`)).text(),
    ready: async () => (await fetch(`http://127.0.0.1:${ports.metricsPort}/readyz`)).status,
  };
  running.push(r);
  return r;
}

function pixelsTensor(values: Float32Array, dtype: 'F32' | 'F16' = 'F32'): common.Tensor {
  const raw = fromFloat32(values, [1, S, S], dtype);
  return {
    dtype: dtype === 'F32' ? common.DType.F32 : common.DType.F16,
    shape: [...raw.shape],
    data: raw.data.slice(),
  };
}

function noise(seed: number): Float32Array {
  const u = mulberry32(seed);
  const px = new Float32Array(PX);
  for (let i = 0; i < px.length; i++) px[i] = u() * 4 - 2;
  return px;
}

type Req = embed.EmbedRequest;
const out = (kind: common.FeatureRequest['kind'], dtype = common.DType.F32): common.FeatureRequest => ({
  kind,
  dtype,
});

async function* requests(startMsg: Partial<embed.EmbedStart>, slices: readonly embed.EmbedSlice[]) {
  await Promise.resolve(); // an async source, as a real client's
  yield { msg: { $case: 'start', value: { model: '', outputs: [], studyId: 't', ...startMsg } } } as Req;
  for (const s of slices) yield { msg: { $case: 'slice', value: s } } as Req;
}

async function collect(stream: AsyncIterable<embed.EmbedResponse>) {
  const results: embed.EmbedResult[] = [];
  let summary: embed.EmbedSummary | undefined;
  for await (const m of stream) {
    if (m.msg?.$case === 'result') results.push(m.msg.value);
    else if (m.msg?.$case === 'done') summary = m.msg.value;
  }
  return { results, summary };
}

async function failure(p: Promise<unknown>): Promise<ClientError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ClientError) return e;
    throw e;
  }
  throw new Error('expected the call to fail');
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Rows of length D standardised (LayerNorm without affine, eps 1e-6 as DINOv2). */
function standardise(rows: Float32Array): Float64Array {
  const out = new Float64Array(rows.length);
  for (let at = 0; at < rows.length; at += D) {
    let mean = 0;
    for (let d = 0; d < D; d++) mean += rows[at + d]!;
    mean /= D;
    let v = 0;
    for (let d = 0; d < D; d++) v += (rows[at + d]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / D + 1e-6);
    for (let d = 0; d < D; d++) out[at + d] = (rows[at + d]! - mean) * inv;
  }
  return out;
}

/**
 * Fits the final LayerNorm's per-channel γ, β by least squares from token pairs (pre, post) and
 * applies it to `row`.
 */
function layerNormFittedOn(pre: Float32Array, post: Float32Array, row: Float32Array): Float32Array {
  const x = standardise(pre);
  const r = standardise(row);
  const n = pre.length / D;
  const out = new Float32Array(D);
  for (let d = 0; d < D; d++) {
    let sx = 0;
    let sy = 0;
    let sxx = 0;
    let sxy = 0;
    for (let t = 0; t < n; t++) {
      const a = x[t * D + d]!;
      const b = post[t * D + d]!;
      sx += a;
      sy += b;
      sxx += a * a;
      sxy += a * b;
    }
    const gamma = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    const beta = (sy - gamma * sx) / n;
    out[d] = gamma * r[d]! + beta;
  }
  return out;
}

function metricValue(text: string, name: string, labels = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const [lhs, v] = line.split(' ');
    if (lhs!.split('{')[0] !== name || (labels && !lhs!.includes(labels))) continue;
    sum += Number(v);
  }
  return sum;
}

function f32Tensor(values: Float32Array, shape: readonly number[]): common.Tensor {
  return { dtype: common.DType.F32, shape: [...shape], data: new Uint8Array(values.slice().buffer) };
}

/** (x − mean) · basis for each (D)-row of `tokens`, one dot product at a time, in float64. */
function manualProjection(
  tokens: Float32Array,
  basis: Float32Array,
  mean: Float32Array | undefined,
  c: number,
): Float64Array {
  const n = tokens.length / D;
  const res = new Float64Array(n * c);
  for (let t = 0; t < n; t++) {
    for (let j = 0; j < c; j++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += (tokens[t * D + d]! - (mean?.[d] ?? 0)) * basis[d * c + j]!;
      res[t * c + j] = s;
    }
  }
  return res;
}

/** A seeded (D, C) basis with entries in ±1/√D (projections of O(1) tokens stay O(1)). */
function randomBasis(c: number, seed: number): Float32Array {
  const u = mulberry32(seed);
  return Float32Array.from({ length: D * c }, () => (u() * 2 - 1) / Math.sqrt(D));
}

const projectedReq = (
  basis: common.Tensor | undefined,
  mean: common.Tensor | undefined,
  prenorm = false,
  dtype = common.DType.UNSPECIFIED,
): common.FeatureRequest => out({ $case: 'projectedTokens', value: { prenorm, basis, mean } }, dtype);

const lhsReq = out({ $case: 'lastHiddenState', value: {} });
const T = 1025;
const D = 96;
const layout = { tokens: T, hidden: D, numRegisterTokens: 0 };

describe('EmbedService', () => {
  it('matches the PyTorch reference through gRPC for tiny-mlp and tiny-swiglu, with every feature kind', async () => {
    if (!hf) return;
    const { client } = await start({ CURIA_EMBED_MODELS: `${hf.mlp},${hf.swiglu}` });
    const models = (await client.listModels({})).models;
    expect(models.map((m) => [m.name, m.isDefault, m.demoWeights])).toEqual([
      ['tiny-mlp', true, false],
      ['tiny-swiglu', false, false],
    ]);
    expect(models[1]!.architecture?.mlp).toBe(common.MlpKind.SWIGLU);
    const mask = new Uint8Array(PX);
    for (let y = 100; y < 300; y++) mask.fill(1, y * S + 50, y * S + 203);
    const maskT: common.Tensor = { dtype: common.DType.U8, shape: [S, S], data: mask };
    const refBasis = randomBasis(6, 11);
    const refMean = Float32Array.from(randomBasis(1, 12), (v) => v * Math.sqrt(D));
    for (const variant of ['mlp', 'swiglu'] as const) {
      const slices = [0, 1].map((i) => ({
        sliceId: 10 + i,
        pixels: pixelsTensor(hf!.px.subarray(i * PX, (i + 1) * PX)),
        mask: maskT,
      }));
      const { results, summary } = await collect(
        client.embed(
          requests(
            {
              model: variant === 'mlp' ? 'tiny-mlp@1' : 'tiny-swiglu',
              outputs: [
                lhsReq,
                out({ $case: 'cls', value: { prenorm: false } }),
                out({ $case: 'patchTokens', value: { prenorm: false } }),
                out({ $case: 'maskPooled', value: { prenorm: false } }),
                out({ $case: 'avgPooledTokens', value: { kernelSize: 4, prenorm: false } }),
                out({ $case: 'avgPooledTokens', value: { kernelSize: 0, prenorm: true } }),
                out({ $case: 'patchTokens', value: { prenorm: true } }),
                out({ $case: 'lastHiddenState', value: {} }, common.DType.F16),
                out({ $case: 'cls', value: { prenorm: true } }),
                projectedReq(f32Tensor(refBasis, [D, 6]), f32Tensor(refMean, [D])),
              ],
            },
            slices,
          ),
        ),
      );
      expect(results.map((r) => r.sliceId)).toEqual([10, 11]);
      expect(summary?.slices).toBe(2);
      expect(summary?.model?.name).toBe(`tiny-${variant}`);
      for (const [i, r] of results.entries()) {
        const f = r.features.map((x) => ({ values: wireFloats(x.tensor), shape: x.tensor!.shape }));
        expect(r.features.map((x) => x.requestIndex)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        const ref = hf.lhs[variant].subarray(i * T * D, (i + 1) * T * D);
        expect(f[0]!.shape).toEqual([T, D]);
        const d = maxAbsDiff(f[0]!.values, ref);
        console.log(`service tiny-${variant} slice ${i}: max|diff| last_hidden_state ${d.toExponential(2)}`);
        expect(d).toBeLessThanOrEqual(1e-4);
        expect(maxAbsDiff(f[1]!.values, ref.subarray(0, D))).toBeLessThanOrEqual(1e-4);
        expect(f[2]!.shape).toEqual([1024, D]);
        const patches = f[2]!.values;
        expect(maxAbsDiff(patches, ref.subarray(D))).toBeLessThanOrEqual(1e-4);
        expect(maxAbsDiff(f[3]!.values, maskPool(patches, mask, D))).toBeLessThanOrEqual(1e-6);
        expect(maxAbsDiff(f[3]!.values, maskPool(patchTokens(ref, layout), mask, D))).toBeLessThanOrEqual(
          1e-4,
        );
        expect(f[4]!.shape).toEqual([64, D]);
        expect(maxAbsDiff(f[4]!.values, avgPoolTokens(patches, 4, D))).toBeLessThanOrEqual(1e-6);
        expect(f[5]!.shape).toEqual([D]);
        expect(maxAbsDiff(f[5]!.values, avgPoolTokens(f[6]!.values, 32, D))).toBeLessThanOrEqual(1e-6);
        expect(maxAbsDiff(f[6]!.values, patches)).toBeGreaterThan(1e-2);
        expect(r.features[7]!.tensor!.dtype).toBe(common.DType.F16);
        expect(r.features[7]!.tensor!.data.byteLength).toBe(T * D * 2);
        expect(maxAbsDiff(f[7]!.values, ref)).toBeLessThanOrEqual(1e-2);
        // Pre-norm CLS: the final LayerNorm (its γ, β fitted from the pre/post patch tokens) maps
        // it onto the pooler output.
        expect(f[8]!.shape).toEqual([D]);
        expect(maxAbsDiff(f[8]!.values, f[1]!.values)).toBeGreaterThan(1e-2);
        expect(
          maxAbsDiff(layerNormFittedOn(f[6]!.values, patches, f[8]!.values), f[1]!.values),
        ).toBeLessThanOrEqual(1e-3);
        expect(f[9]!.shape).toEqual([1024, 6]);
        const want = manualProjection(patchTokens(ref, layout), refBasis, refMean, 6);
        expect(maxAbsDiff(f[9]!.values, Float32Array.from(want))).toBeLessThanOrEqual(1e-3);
      }
    }
  });

  it('serves an F32 bundle and its INT8 derivative side by side: `model` picks, batches never mix bundles', async () => {
    if (!hf) return;
    const mlp = sharedPathOrSkip('reference/dinov2/tiny-mlp')!;
    const int8 = await buildBundleFromHf(mlp, join(tmp, 'tiny-mlp-int8'), { quantize: 'int8' });
    const { client, metrics } = await start({
      CURIA_EMBED_MODELS: `${hf.mlp},${int8.dir}`,
      CURIA_EMBED_MAX_QUEUE_DELAY_MS: '50',
      CURIA_EMBED_MAX_BATCH: '8',
    });
    const models = (await client.listModels({})).models;
    expect(models.map((m) => `${m.name}@${m.version}:${m.isDefault}`)).toEqual([
      'tiny-mlp@1:true',
      'tiny-mlp@1-int8:false',
    ]);
    expect(models[1]!.sha256).toBe(int8.manifest.sha256);
    expect(int8.manifest.quantization!.source_sha256).toBe(models[0]!.sha256);
    // GetInfo/ListModels: one feature space, and the INT8 bundle's quantization and build-time fidelity.
    expect(models[1]!.featureSpace).toBe(models[0]!.featureSpace);
    expect(models[1]!.featureSpace).toMatch(/^[0-9a-f]{64}$/);
    expect(models[0]!.quantization).toBeUndefined();
    expect(models[1]!.quantization).toMatchObject({
      scheme: 'int8',
      sourceSha256: models[0]!.sha256,
      calibration: int8.manifest.quantization!.fidelity.calibration,
    });
    expect(models[1]!.quantization!.clsCosineMin).toBeGreaterThanOrEqual(0.995);
    expect(models[1]!.quantization!.patchCosineMean).toBeGreaterThanOrEqual(0.99);
    // Two concurrent streams per bundle, two reference slices each.
    const calls = ['tiny-mlp@1', 'tiny-mlp@1-int8', 'tiny-mlp@1', 'tiny-mlp@1-int8'].map(async (model, c) => {
      let answered = '';
      const slices = [0, 1].map((i) => ({
        sliceId: 10 * c + i,
        pixels: pixelsTensor(hf!.px.subarray(i * PX, (i + 1) * PX)),
      }));
      const r = await collect(
        client.embed(requests({ model, outputs: [lhsReq] }, slices), {
          onHeader: (h: Metadata) => (answered = h.get('curia-model') ?? ''),
        }),
      );
      return { ...r, model, answered };
    });
    for (const { results, summary, model, answered } of await Promise.all(calls)) {
      // The service says which bundle answered, in the headers and the summary.
      expect(answered).toBe(model);
      expect(`${summary!.model!.name}@${summary!.model!.version}`).toBe(model);
      for (const [i, r] of results.entries()) {
        const got = wireFloats(r.features[0]!.tensor);
        const ref = hf.lhs.mlp.subarray(i * T * D, (i + 1) * T * D);
        const c = compareTokens(ref, got, layout);
        if (model.endsWith('-int8')) {
          expect(c.clsCosines[0]!).toBeGreaterThanOrEqual(0.995);
          expect(c.patchCosineMean).toBeGreaterThanOrEqual(0.99);
          expect(c.maxAbsDiff).toBeGreaterThan(1e-4); // really the quantized graph
        } else {
          expect(c.maxAbsDiff).toBeLessThanOrEqual(1e-4);
        }
      }
    }
    const text = await metrics();
    for (const key of ['tiny-mlp@1', 'tiny-mlp@1-int8']) {
      expect(metricValue(text, 'curia_embed_slices_total', `model="${key}"`)).toBe(4);
      // Per-bundle batching: a bundle's batches hold only its own 4 slices.
      expect(metricValue(text, 'curia_embed_batch_size_sum', `model="${key}"`)).toBe(4);
    }
  });

  it('merges concurrent streams into batches and returns each stream its own results in order', async () => {
    const { client, metrics } = await start({
      CURIA_EMBED_MODELS: randomDir,
      CURIA_EMBED_MAX_QUEUE_DELAY_MS: '50',
      CURIA_EMBED_MAX_BATCH: '8',
    });
    const inputs = [0, 1, 2, 3].map((i) => noise(100 + i));
    // Each input's own tokens, computed alone.
    const alone = await Promise.all(
      inputs.map(async (px, i) => {
        const { results } = await collect(
          client.embed(
            requests({ outputs: [out({ $case: 'cls', value: { prenorm: false } })] }, [
              { sliceId: i, pixels: pixelsTensor(px) },
            ]),
          ),
        );
        return wireFloats(results[0]!.features[0]!.tensor);
      }),
    );
    const calls = [0, 1, 2, 3].map((c) => {
      const order = [c, (c + 1) % 4, (c + 2) % 4];
      return collect(
        client.embed(
          requests(
            { outputs: [out({ $case: 'cls', value: { prenorm: false } })] },
            order.map((k) => ({ sliceId: 1000 * c + k, pixels: pixelsTensor(inputs[k]!) })),
          ),
        ),
      ).then((r) => ({ ...r, order, c }));
    });
    const done = await Promise.all(calls);
    for (const { results, summary, order, c } of done) {
      expect(results.map((r) => r.sliceId)).toEqual(order.map((k) => 1000 * c + k));
      for (const [j, r] of results.entries())
        expect(maxAbsDiff(wireFloats(r.features[0]!.tensor), alone[order[j]!]!)).toBeLessThanOrEqual(1e-4);
      expect(summary?.batchSizes.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(3);
    }
    const text = await metrics();
    const batches = metricValue(text, 'curia_embed_batch_size_count');
    const singles = metricValue(text, 'curia_embed_batch_size_bucket', 'le="1"');
    expect(metricValue(text, 'curia_embed_slices_total')).toBe(16);
    expect(batches).toBeGreaterThan(singles); // some batch held more than one slice
    expect(Math.max(...done.flatMap((d) => d.summary!.batchSizes))).toBeGreaterThan(1);
  });

  it('projects the patch tokens onto a given basis, in the requested dtype', async () => {
    const { client } = await start({ CURIA_EMBED_MODELS: randomDir });
    const C8 = 8;
    const C5 = 5;
    const basis8 = randomBasis(C8, 41);
    const basis5 = randomBasis(C5, 42);
    const mean = Float32Array.from(randomBasis(1, 43), (v) => v * Math.sqrt(D));
    const { results, summary } = await collect(
      client.embed(
        requests(
          {
            outputs: [
              out({ $case: 'patchTokens', value: { prenorm: false } }),
              projectedReq(f32Tensor(basis8, [D, C8]), f32Tensor(mean, [D])),
              out({ $case: 'patchTokens', value: { prenorm: true } }),
              projectedReq(f32Tensor(basis5, [D, C5]), undefined, true, common.DType.F16),
              projectedReq(f32Tensor(basis8, [D, C8]), f32Tensor(mean, [D]), false, common.DType.F32),
            ],
          },
          [0, 1].map((i) => ({ sliceId: 20 + i, pixels: pixelsTensor(noise(60 + i)) })),
        ),
      ),
    );
    expect(summary?.slices).toBe(2);
    expect(results.map((r) => r.sliceId)).toEqual([20, 21]);
    for (const r of results) {
      expect(r.features.map((f) => f.requestIndex)).toEqual([0, 1, 2, 3, 4]);
      const t = r.features.map((f) => f.tensor!);
      const post = wireFloats(t[0]);
      const pre = wireFloats(t[2]);
      /** Checks dtype, shape and bytes of a projected output; returns its values and max |diff|. */
      const check = (x: common.Tensor, dtype: 'F32' | 'F16', c: number, want: Float64Array) => {
        expect([x.dtype, x.shape, x.data.byteLength]).toEqual([
          common.DType[dtype],
          [1024, c],
          1024 * c * (dtype === 'F32' ? 4 : 2),
        ]);
        expect(Math.max(...Array.from(want, Math.abs))).toBeGreaterThan(0.5); // not trivially small
        return { got: wireFloats(x), diff: maxAbsDiff(wireFloats(x), Float32Array.from(want)) };
      };
      // F32 (unspecified dtype), with a mean: (1024, 8).
      const p8 = check(t[1]!, 'F32', C8, manualProjection(post, basis8, mean, C8));
      // F16, pre-LayerNorm tokens, no mean: (1024, 5) in half the bytes.
      const p5 = check(t[3]!, 'F16', C5, manualProjection(pre, basis5, undefined, C5));
      console.log(
        `service projected_tokens slice ${r.sliceId}: max|diff| F32 ${p8.diff.toExponential(2)}, F16 ${p5.diff.toExponential(2)}`,
      );
      expect(p8.diff).toBeLessThanOrEqual(1e-4);
      expect(p5.diff).toBeLessThanOrEqual(1e-2);
      // An explicit F32 equals the default; prenorm picks the pre-LayerNorm tokens.
      expect(maxAbsDiff(wireFloats(t[4]), p8.got)).toBe(0);
      expect(
        maxAbsDiff(Float32Array.from(manualProjection(post, basis5, undefined, C5)), p5.got),
      ).toBeGreaterThan(1e-2);
    }
  });

  it('refuses bad projection bases and means at start, naming the field', async () => {
    const { client } = await start({ CURIA_EMBED_MODELS: randomDir });
    const cls = out({ $case: 'cls', value: { prenorm: false } });
    const b = randomBasis(4, 7);
    // Refused at start: the stream carries no slice.
    const refuse = async (p: common.FeatureRequest) => {
      const e = await failure(collect(client.embed(requests({ outputs: [cls, p] }, []))));
      expect(Status[e.code]).toBe('INVALID_ARGUMENT');
      return e.details;
    };
    const field = 'start\\.outputs\\[1\\]\\.projected_tokens';
    const nan = b.slice();
    nan[17] = Number.NaN;
    const inf = new Float32Array(D);
    inf[3] = Number.POSITIVE_INFINITY;
    const f16 = fromFloat32(b, [D, 4], 'F16');
    const cases: [common.FeatureRequest, RegExp][] = [
      [projectedReq(undefined, undefined), /basis is missing/],
      [
        projectedReq({ dtype: common.DType.F16, shape: [D, 4], data: f16.data }, undefined),
        /basis\.dtype must be D_TYPE_F32 \(got D_TYPE_F16\)/,
      ],
      [projectedReq(f32Tensor(b, [D * 4]), undefined), /basis\.shape must be \(D, C\) = \(96, C\)/],
      [
        projectedReq(f32Tensor(b.subarray(0, 95 * 4), [95, 4]), undefined),
        /basis\.shape\[0\] must be the model's hidden size 96 \(got 95\)/,
      ],
      [
        projectedReq(f32Tensor(new Float32Array(D * 65), [D, 65]), undefined),
        /basis\.shape\[1\] \(channels C\) must be between 1 and 64 \(got 65\)/,
      ],
      [
        projectedReq(f32Tensor(new Float32Array(0), [D, 0]), undefined),
        /basis\.shape\[1\] \(channels C\) must be between 1 and 64 \(got 0\)/,
      ],
      [
        projectedReq({ ...f32Tensor(b, [D, 4]), data: f32Tensor(b, [D, 4]).data.subarray(4) }, undefined),
        /basis\.data has 1532 bytes/,
      ],
      [projectedReq(f32Tensor(nan, [D, 4]), undefined), /basis contains NaN or Inf \(element 17\)/],
      [
        projectedReq(f32Tensor(b, [D, 4]), f32Tensor(new Float32Array(95), [95])),
        /mean\.shape must be \[96\] \(got \[95\]\)/,
      ],
      [projectedReq(f32Tensor(b, [D, 4]), f32Tensor(inf, [D])), /mean contains NaN or Inf \(element 3\)/],
      [
        projectedReq(f32Tensor(b, [D, 4]), undefined, false, common.DType.F64),
        /start\.outputs\[1\]\.dtype must be D_TYPE_F32 or D_TYPE_F16/,
      ],
    ];
    for (const [req, re] of cases) {
      const details = await refuse(req);
      expect(details).toMatch(re);
      if (!/dtype must be D_TYPE_F32 or/.test(details)) expect(details).toMatch(new RegExp(`^${field}\\.`));
    }
  });

  it('sheds with RESOURCE_EXHAUSTED and a retry-after-ms trailer when the queue is full', async () => {
    const { client, metrics } = await start({
      CURIA_EMBED_MODELS: randomDir,
      CURIA_EMBED_MAX_BATCH: '1',
      CURIA_EMBED_MAX_QUEUE_DELAY_MS: '0',
      CURIA_EMBED_MAX_QUEUE_SLICES: '1',
    });
    const px = pixelsTensor(noise(1));
    const trailers: string[] = [];
    // Several streams at once against a one-slice queue: some slices must be shed.
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, () =>
        collect(
          client.embed(
            requests(
              { outputs: [lhsReq] },
              Array.from({ length: 8 }, (_, i) => ({ sliceId: i, pixels: px })),
            ),
            { onTrailer: (t) => trailers.push(t.get('retry-after-ms') ?? '') },
          ),
        ).then(
          () => null,
          (e: unknown) => e,
        ),
      ),
    );
    const shed = outcomes.filter((e): e is ClientError => e instanceof ClientError);
    expect(shed.length).toBeGreaterThan(0);
    const err = shed[0]!;
    const trailer = trailers.find((t) => t !== '') ?? '';
    expect(Status[err.code]).toBe('RESOURCE_EXHAUSTED');
    expect(err.details).toMatch(/queue is full.*retry after \d+ms/);
    expect(Number(trailer)).toBeGreaterThan(0);
    const text = await metrics();
    expect(metricValue(text, 'curia_embed_shed_total')).toBeGreaterThanOrEqual(1);
    expect(metricValue(text, 'curia_embed_errors_total', 'reason="RESOURCE_EXHAUSTED"')).toBe(shed.length);
  });

  it('refuses a new stream at start while the queue is full, before it sends a slice', async () => {
    const { client, metrics } = await start({
      CURIA_EMBED_MODELS: randomDir,
      CURIA_EMBED_MAX_BATCH: '8',
      CURIA_EMBED_MAX_QUEUE_DELAY_MS: '5000',
      CURIA_EMBED_MAX_QUEUE_SLICES: '2',
    });
    const px = pixelsTensor(noise(3));
    const filler = new AbortController();
    const filling = collect(
      client.embed(
        requests({ outputs: [out({ $case: 'cls', value: { prenorm: false } })] }, [
          { sliceId: 0, pixels: px },
          { sliceId: 1, pixels: px },
        ]),
        { signal: filler.signal },
      ),
    ).catch(() => null);
    for (let i = 0; i < 300 && metricValue(await metrics(), 'curia_embed_queue_depth') < 2; i++)
      await new Promise((r) => setTimeout(r, 10));
    // A client that waits for admission (the response headers) before its first slice.
    let slicesPulled = 0;
    let headers = 0;
    let admit!: () => void;
    const admitted = new Promise<void>((r) => (admit = r));
    async function* startThenSlices(): AsyncGenerator<Req> {
      yield { msg: { $case: 'start', value: { model: '', outputs: [lhsReq], studyId: 't' } } };
      await admitted;
      for (;;) {
        await new Promise((r) => setTimeout(r, 50));
        slicesPulled++;
        yield { msg: { $case: 'slice', value: { sliceId: slicesPulled, pixels: px } } };
      }
    }
    const t0 = performance.now();
    const onHeader = (): void => {
      headers++;
      admit();
    };
    const err = await failure(collect(client.embed(startThenSlices(), { onHeader })));
    const ms = performance.now() - t0;
    filler.abort();
    await filling;
    expect(Status[err.code]).toBe('RESOURCE_EXHAUSTED');
    expect(err.details).toMatch(/queue is full \(2 slices waiting, limit 2\); retry after \d+ms/);
    expect(headers).toBe(0); // refused trailers-only: the client never got the go-ahead
    expect(slicesPulled).toBe(0);
    expect(ms).toBeLessThan(2_000);
    expect(metricValue(await metrics(), 'curia_embed_shed_total')).toBe(1);
  });

  it('refuses a bad start without admitting it: no headers, so a waiting client sends no slice', async () => {
    const { client } = await start({ CURIA_EMBED_MODELS: randomDir });
    let headers = 0;
    let slicesPulled = 0;
    let admit!: () => void;
    const admitted = new Promise<void>((r) => (admit = r));
    async function* badStartThenSlices(): AsyncGenerator<Req> {
      yield { msg: { $case: 'start', value: { model: '', outputs: [], studyId: 't' } } };
      await admitted;
      slicesPulled++;
      yield { msg: { $case: 'slice', value: { sliceId: 0, pixels: pixelsTensor(noise(5)) } } };
    }
    const onHeader = (): void => {
      headers++;
      admit();
    };
    const err = await failure(collect(client.embed(badStartThenSlices(), { onHeader })));
    expect(Status[err.code]).toBe('INVALID_ARGUMENT');
    expect(headers).toBe(0);
    expect(slicesPulled).toBe(0);
  });

  it('admits a stream with response headers right after start, before the client sends a slice', async () => {
    const { client } = await start({ CURIA_EMBED_MODELS: randomDir });
    let admit!: () => void;
    const admitted = new Promise<void>((r) => (admit = r));
    let admittedBeforeSlice = false;
    async function* startThenSlice(): AsyncGenerator<Req> {
      yield { msg: { $case: 'start', value: { model: '', outputs: [lhsReq], studyId: 't' } } };
      admittedBeforeSlice = await Promise.race([
        admitted.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 5_000)),
      ]);
      yield { msg: { $case: 'slice', value: { sliceId: 7, pixels: pixelsTensor(noise(4)) } } };
    }
    let model = '';
    const onHeader = (h: Metadata): void => {
      model = h.get('curia-model') ?? '';
      admit();
    };
    const out = await collect(client.embed(startThenSlice(), { onHeader }));
    expect(admittedBeforeSlice).toBe(true);
    expect(model).toMatch(/^[\w.-]+@[\w.-]+$/);
    expect(out.results.map((r) => r.sliceId)).toEqual([7]);
  });

  it('stops serving when its engine thread dies: NOT_SERVING, calls fail UNAVAILABLE', async () => {
    const r = await start({ CURIA_EMBED_MODELS: randomDir });
    expect(await r.ready()).toBe(200);
    const engine = r.hooks.registry.entries[0]!.engine;
    // Stands in for a native crash of onnxruntime on the thread.
    await (engine as unknown as { worker: Worker }).worker.terminate();
    expect(await r.ready()).toBe(503);
    expect(r.server.failed?.message).toContain('engine thread died');
    const err = await failure(
      collect(
        r.client.embed(requests({ outputs: [lhsReq] }, [{ sliceId: 0, pixels: pixelsTensor(noise(4)) }])),
      ),
    );
    expect(Status[err.code]).toBe('UNAVAILABLE');
    expect(err.details).toContain('retry on another replica');
  });

  it('drops the queued slices of a cancelled stream', async () => {
    // A long batching window keeps the slices queued; the caller cancels while they wait.
    const { client, metrics } = await start({
      CURIA_EMBED_MODELS: randomDir,
      CURIA_EMBED_MAX_BATCH: '64',
      CURIA_EMBED_MAX_QUEUE_DELAY_MS: '5000',
      CURIA_EMBED_MAX_INFLIGHT_PER_STREAM: '64',
    });
    const sent = 40;
    const px = pixelsTensor(noise(2));
    const ac = new AbortController();
    let depthAtCancel = 0;
    const watcher = (async () => {
      for (let i = 0; i < 400 && depthAtCancel < 10; i++) {
        depthAtCancel = metricValue(await metrics(), 'curia_embed_queue_depth');
        await new Promise((r) => setTimeout(r, 10));
      }
      ac.abort();
    })();
    const err = await collect(
      client.embed(
        requests(
          { outputs: [out({ $case: 'cls', value: { prenorm: false } })] },
          Array.from({ length: sent }, (_, i) => ({ sliceId: i, pixels: px })),
        ),
        { signal: ac.signal },
      ),
    ).then(
      () => null,
      (e: unknown) => e as Error,
    );
    await watcher;
    expect(err?.name).toBe('AbortError');
    await new Promise((r) => setTimeout(r, 300));
    const text = await metrics();
    const computed = metricValue(text, 'curia_embed_slices_total');
    console.log(`cancelled stream: ${sent} sent, ${depthAtCancel} queued at cancel, ${computed} computed`);
    expect(depthAtCancel).toBeGreaterThanOrEqual(10);
    expect(computed).toBeLessThan(sent);
    expect(computed).toBe(0);
    expect(metricValue(text, 'curia_embed_queue_depth')).toBe(0);
    expect(metricValue(text, 'curia_embed_inflight_slices')).toBe(0);
  });

  it('takes each slice from the memory budget: an oversize stream is RESOURCE_EXHAUSTED at start, a normal one right after succeeds', async () => {
    const budget = 8 * 1024 * 1024;
    const { client, server } = await start({
      CURIA_EMBED_MODELS: randomDir,
      CURIA_MEMORY_BUDGET_BYTES: String(budget),
    });
    const px = pixelsTensor(noise(5));
    const slices = Array.from({ length: 12 }, (_, i) => ({ sliceId: i, pixels: px }));
    // 16 full-sequence outputs: ~15 MiB per slice (pixels, both token sequences, 16 × T×D in F32 twice).
    const oversize = Array.from({ length: 16 }, (_, i) =>
      i % 2 ? lhsReq : out({ $case: 'patchTokens', value: { prenorm: true } }),
    );
    let headers = false;
    const t0 = performance.now();
    const e = await failure(
      collect(client.embed(requests({ outputs: oversize }, slices), { onHeader: () => (headers = true) })),
    );
    const ms = performance.now() - t0;
    expect(Status[e.code]).toBe('RESOURCE_EXHAUSTED');
    expect(e.details).toMatch(
      new RegExp(
        `^an Embed slice \\(16 outputs, ${T}×${D} tokens\\) needs \\d+ bytes .* memory budget of ${budget} bytes`,
      ),
    );
    expect(headers).toBe(false); // refused at start: the client sent no slice
    expect(ms).toBeLessThan(1000);
    expect(server.memory.heldBytes).toBe(0);
    // A normal stream right after: 12 slices through a budget that holds ~3 at once (backpressure,
    // not refusal), every share given back at the end.
    const cls = out({ $case: 'cls', value: { prenorm: false } });
    const ok = await collect(client.embed(requests({ outputs: [cls, lhsReq] }, slices)));
    expect(ok.results.map((r) => r.sliceId)).toEqual(slices.map((s) => s.sliceId));
    expect(server.memory.heldBytes).toBe(0);
  });

  it('refuses a slice stream with retry-after-ms when the memory budget stays full, and gives every share back', async () => {
    const { client, server } = await start({
      CURIA_EMBED_MODELS: randomDir,
      CURIA_MEMORY_BUDGET_BYTES: String(4 * 1024 * 1024),
      CURIA_MEMORY_BUDGET_WAIT_MS: '50',
    });
    // Room for one slice: the budget is held by a stream whose results are not read.
    const hold = await server.memory.acquire(server.memory.capacity - 1024, { what: 'a test hold' });
    const trailers: string[] = [];
    const cls = out({ $case: 'cls', value: { prenorm: false } });
    const t0 = performance.now();
    const e = await failure(
      collect(
        client.embed(requests({ outputs: [cls] }, [{ sliceId: 0, pixels: pixelsTensor(noise(6)) }]), {
          onTrailer: (t) => trailers.push(t.get('retry-after-ms') ?? ''),
        }),
      ),
    );
    expect(Status[e.code]).toBe('RESOURCE_EXHAUSTED');
    expect(e.details).toMatch(/has \d+ bytes .* free and 0 calls waiting; retry after 100ms/);
    expect(trailers).toContain('100');
    expect(performance.now() - t0).toBeLessThan(1000);
    hold();
    const ok = await collect(
      client.embed(requests({ outputs: [cls] }, [{ sliceId: 0, pixels: pixelsTensor(noise(6)) }])),
    );
    expect(ok.results).toHaveLength(1);
    expect(server.memory.heldBytes).toBe(0);
  });

  it('rejects bad input with precise statuses', async () => {
    const { client } = await start({ CURIA_EMBED_MODELS: randomDir });
    const good = pixelsTensor(noise(3));
    const cls = out({ $case: 'cls', value: { prenorm: false } });
    const run = (s: Partial<embed.EmbedStart>, slices: embed.EmbedSlice[]) =>
      failure(collect(client.embed(requests(s, slices))));

    let e = await run({ model: 'nope', outputs: [cls] }, []);
    expect([Status[e.code], e.details]).toEqual([
      'NOT_FOUND',
      expect.stringMatching(/unknown model 'nope'.*tiny-demo@1/),
    ]);
    e = await run({ model: 'tiny-demo@2', outputs: [cls] }, []);
    expect(Status[e.code]).toBe('NOT_FOUND');
    e = await run({ outputs: [] }, []);
    expect([Status[e.code], e.details]).toEqual(['INVALID_ARGUMENT', expect.stringMatching(/start.outputs/)]);
    e = await run(
      { outputs: [out({ $case: 'avgPooledTokens', value: { kernelSize: 5, prenorm: false } })] },
      [],
    );
    expect(e.details).toMatch(/outputs\[0\].avg_pooled_tokens.kernel_size 5/);

    const bad = { ...good, shape: [1, 256, 1024] };
    e = await run({ outputs: [cls] }, [{ sliceId: 7, pixels: bad }]);
    expect([Status[e.code], e.details]).toEqual([
      'INVALID_ARGUMENT',
      expect.stringMatching(/slice 7: pixels.shape/),
    ]);
    e = await run({ outputs: [cls] }, [{ sliceId: 8, pixels: { ...good, data: good.data.subarray(4) } }]);
    expect(e.details).toMatch(/slice 8: pixels.data has/);
    e = await run({ outputs: [cls] }, [{ sliceId: 9, pixels: { ...good, dtype: common.DType.F64 } }]);
    expect(e.details).toMatch(/slice 9: pixels.dtype/);
    const nan = noise(4);
    nan[12345] = Number.NaN;
    e = await run({ outputs: [cls] }, [
      { sliceId: 1, pixels: good },
      { sliceId: 2, pixels: pixelsTensor(nan) },
    ]);
    expect([Status[e.code], e.details]).toEqual([
      'INVALID_ARGUMENT',
      expect.stringMatching(/slice 2: pixels has a NaN/),
    ]);
    const mp = out({ $case: 'maskPooled', value: { prenorm: true } });
    e = await run({ outputs: [mp] }, [{ sliceId: 3, pixels: good }]);
    expect(e.details).toMatch(/slice 3: mask is missing/);
    e = await run({ outputs: [mp] }, [
      { sliceId: 4, pixels: good, mask: { dtype: common.DType.U8, shape: [S, S], data: new Uint8Array(PX) } },
    ]);
    expect(e.details).toMatch(/slice 4: mask is empty/);

    const second = (async function* () {
      yield* requests({ outputs: [cls] }, []);
      yield { msg: { $case: 'start', value: { model: '', outputs: [cls], studyId: '' } } } as Req;
    })();
    e = await failure(collect(client.embed(second)));
    expect([Status[e.code], e.details]).toEqual(['INVALID_ARGUMENT', expect.stringMatching(/must be slice/)]);
    const noStart = (async function* () {
      await Promise.resolve();
      yield { msg: { $case: 'slice', value: { sliceId: 0, pixels: good } } } as Req;
    })();
    e = await failure(collect(client.embed(noStart)));
    expect(e.details).toMatch(/first message must be start/);

    // F16 input is accepted and matches F32 input closely.
    const f16 = await collect(
      client.embed(requests({ outputs: [cls] }, [{ sliceId: 0, pixels: pixelsTensor(noise(3), 'F16') }])),
    );
    expect(f16.results).toHaveLength(1);

    const { info } = await client.getInfo({});
    expect(info?.models[0]?.name).toBe('tiny-demo');
    expect(info?.demoWeightsLoaded).toBe(true);
    expect(info?.executionProvider).toBe('cpu');
    expect(info?.limits.max_batch_size).toBe('8');
    expect(info?.limits.max_queue_depth).toBe('64');
  });
});
