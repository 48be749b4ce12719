import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ClientError, common, Metadata, Status, wireFloats, type AnalysisResult } from '@curia/client';
import { loadHead } from '@curia/heads';
import { generatePhantom, phantomToNifti } from '@curia/phantom';
import { sharedPathOrSkip } from '@curia/tensors';
import { preprocessToTensor } from '@curia/volume';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { metricsUrls, metricValue } from './cluster-metrics.js';
import { GatewayCluster } from './gateway-cluster.js';
import { otlpEnv, servicesInTrace, startCollector } from './otlp-collector.js';

/**
 * End to end through the spawned cluster (gateway, preprocess, heads, two embed replicas, each its
 * own process): results equal the same engines run in this process; a repeat hits the cache; a
 * replica killed mid-study does not fail the study; a short deadline leaves no orphaned work; one
 * trace spans every hop (exported over OTLP/HTTP to a collector in this test).
 */
const ct = sharedPathOrSkip('data/totalsegmentator/example_ct_sm.nii.gz');
const dicom = sharedPathOrSkip('data/totalsegmentator/example_ct_dicom');

const CLS: common.FeatureRequest = {
  kind: { $case: 'cls', value: { prenorm: false } },
  dtype: common.DType.F32,
};

describe.skipIf(!ct || !dicom)('AnalyzeStudy end to end through the spawned cluster', () => {
  let gw: GatewayCluster;
  let work: string;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  /** name@version of the head the first test fits. */
  let fittedHeadRef = '';
  const url = (service: string): string[] => metricsUrls(gw.cluster, service);

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'curia-e2e-'));
    collector = await startCollector();
    gw = await GatewayCluster.start('e2e', {
      ports: 'dynamic',
      replicas: { embed: 2 },
      only: ['preprocess', 'embed', 'heads', 'gateway'],
      env: {
        CURIA_HEADS_DIR: join(work, 'heads'),
        CURIA_SHUTDOWN_GRACE_MS: '2000',
        ...otlpEnv(collector.url),
      },
    });
  }, 240_000);

  afterAll(async () => {
    await gw?.close();
    collector?.server.close();
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  /** CLS of every slice from the engines in this process, keyed by canonical index. */
  async function inProcessCls(path: string): Promise<Map<number, Float32Array>> {
    const t = await preprocessToTensor({ kind: 'path', path });
    const [k, , h, w] = t.shape;
    const out = new Map<number, Float32Array>();
    for (let b = 0; b < k; b += 4) {
      const n = Math.min(4, k - b);
      const r = await gw.engine.run(t.pixelValues.subarray(b * h * w, (b + n) * h * w), n);
      for (let i = 0; i < n; i++) {
        out.set(
          t.indices[b + i]!,
          r.lastHiddenState!.slice(i * r.tokens * r.hidden, i * r.tokens * r.hidden + r.hidden),
        );
      }
    }
    return out;
  }

  function expectClsMatch(r: AnalysisResult, expected: Map<number, Float32Array>): void {
    expect(r.embeddings.map((e) => e.mapping!.canonicalIndex)).toEqual(
      [...expected.keys()].sort((a, b) => a - b),
    );
    let maxDiff = 0;
    for (const e of r.embeddings) {
      const got = wireFloats(e.features[0]!.tensor);
      const want = expected.get(e.mapping!.canonicalIndex)!;
      expect(got.length).toBe(want.length);
      for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
    }
    expect(maxDiff).toBeLessThan(1e-4);
  }

  it('analyses the shared CT like the in-process engines; a fitted head agrees; the repeat is all cache hits', async () => {
    const first = await gw.analyse(ct!, { embeddingOutputs: [CLS] });
    expect(first.summary?.cache).toEqual({ hits: 0, misses: 30 });
    expect(first.summary?.demoWeights).toBe(true);
    expect(first.geometry?.numCanonicalSlices).toBe(30);
    expectClsMatch(first, await inProcessCls(ct!));

    // Fit a slice-level head on those CLS features (inferior vs superior half), then run it.
    const fitted = await gw.fitClassifier({
      head: 'e2e-half',
      model: `${first.summary!.model!.name}@${first.summary!.model!.version}`,
      feature: CLS,
      labelNames: ['inferior', 'superior'],
      samples: first.embeddings.map((e) => ({
        features: e.features[0]!.tensor,
        classIndex: e.mapping!.canonicalIndex < 15 ? 0 : 1,
      })),
    });
    const ref = `${fitted.head!.name}@${fitted.head!.version}`;
    fittedHeadRef = ref;
    const second = await gw.analyse(ct!, { heads: [ref], returnSlicePredictions: true });
    expect(second.summary?.cache).toEqual({ hits: 30, misses: 0 });
    expect(second.heads).toHaveLength(1);
    const result = second.heads[0]!;
    expect(result.slices).toHaveLength(30);
    // The same head, loaded from the store in this process, on the CLS the first run returned.
    const head = await loadHead(join(work, 'heads', 'e2e-half', fitted.head!.version));
    const hidden = gw.engine.info().hidden;
    const cls = new Float32Array(30 * hidden);
    first.embeddings.forEach((e, i) => cls.set(wireFloats(e.features[0]!.tensor), i * hidden));
    const local = await head.run({
      slices: 30,
      hidden,
      blocks: [{ data: cls, tokensPerSlice: 1 }],
    });
    result.slices.forEach((s, i) => {
      const logits = wireFloats(s.prediction!.logits);
      for (let c = 0; c < local.outputs; c++)
        expect(logits[c]).toBeCloseTo(local.logits[i * local.outputs + c]!, 4);
    });
    expect(await metricValue(url('gateway')[0]!, 'curia_gateway_cache_hits_total')).toBeGreaterThanOrEqual(
      30,
    );
  }, 180_000);

  it('analyses the JPEG 2000 DICOM series (uploaded file by file) like the in-process engines', async () => {
    const r = await gw.analyse(dicom!, { embeddingOutputs: [CLS] });
    expect(r.summary?.slicesEmbedded).toBe(20);
    expectClsMatch(r, await inProcessCls(dicom!));
  }, 180_000);

  it('puts every hop of a study in one trace', async () => {
    // A study no earlier test sent (every slice misses the cache) with the fitted head: all four
    // services take part in this one call, which the caller starts under its own trace id.
    expect(fittedHeadRef).not.toBe('');
    const p = generatePhantom({ size: [96, 96, 6], seed: 21 });
    const path = join(work, 'trace.nii.gz');
    await writeFile(path, phantomToNifti(p, { gzip: true }).image);
    const traceId = randomBytes(16).toString('hex');
    const r = await gw.analyse(
      path,
      { heads: [fittedHeadRef] },
      { metadata: Metadata({ traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` }) },
    );
    expect(r.summary?.cache?.hits).toBe(0);
    expect(r.heads).toHaveLength(1);
    const all = ['embed', 'gateway', 'heads', 'preprocess'];
    expect(await servicesInTrace(collector.spans, traceId, all.length)).toEqual(all);
  }, 60_000);

  it('cancels every stage when the caller deadline is shorter than the work', async () => {
    const p = generatePhantom({ size: [128, 128, 80], seed: 11 });
    const path = join(work, 'deadline.nii.gz');
    await writeFile(path, phantomToNifti(p, { gzip: true }).image);
    const t0 = performance.now();
    await expect(gw.analyse(path, { embeddingOutputs: [CLS] }, { deadlineMs: 1500 })).rejects.toMatchObject({
      code: Status.DEADLINE_EXCEEDED,
    });
    expect(performance.now() - t0).toBeLessThan(5000);
    // No orphaned work: within a moment nothing is queued or computing, and nothing more gets embedded.
    const settled = async (): Promise<number> => {
      let inflight = 0;
      for (const u of url('embed')) inflight += await metricValue(u, 'curia_embed_inflight_slices');
      for (const svc of ['embed', 'preprocess', 'gateway'])
        for (const u of url(svc))
          inflight += await metricValue(u, 'curia_grpc_in_flight_calls', { grpc_type: 'bidi_stream' });
      return inflight;
    };
    let inflight = 1;
    for (let i = 0; i < 50 && inflight > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      inflight = await settled();
    }
    expect(inflight).toBe(0);
    const count = async () => {
      let n = 0;
      for (const u of url('embed')) n += await metricValue(u, 'curia_embed_slices_total');
      return n;
    };
    const before = await count();
    await new Promise((r) => setTimeout(r, 1000));
    expect(await count()).toBe(before);
  }, 60_000);

  it('completes a study when one of two Embed replicas dies mid-study, and fails fast when all are gone', async () => {
    const p = generatePhantom({ size: [128, 128, 48], seed: 12 });
    const path = join(work, 'kill.nii.gz');
    await writeFile(path, phantomToNifti(p, { gzip: true }).image);
    const replicas = gw.cluster.endpoints().filter((e) => e.service === 'embed');
    // Kill the replica that holds the study's Embed stream (round-robin decides which), mid-study.
    let kill: Promise<number> | null = null;
    const killServing = async (): Promise<number> => {
      for (;;) {
        for (const e of replicas) {
          const busy = await metricValue(
            `http://127.0.0.1:${e.metricsPort}/metrics`,
            'curia_embed_inflight_slices',
          );
          if (busy > 0) {
            process.kill(e.pid, 'SIGKILL');
            return e.pid;
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const r = await gw.analyse(
      path,
      { embeddingOutputs: [CLS] },
      {
        onProgress: (ev) => {
          if (!kill && ev.stage === 'embed' && ev.done >= 2) kill = killServing();
        },
      },
    );
    expect(kill).not.toBeNull();
    const victimPid = await kill!;
    expect(r.embeddings).toHaveLength(48);
    expect(r.embeddings.map((e) => e.mapping!.canonicalIndex)).toEqual(
      Array.from({ length: 48 }, (_, i) => i),
    );
    expect(
      await metricValue(url('gateway')[0]!, 'curia_gateway_backend_retries_total', { stage: 'embed' }),
    ).toBeGreaterThan(0);

    const survivor = replicas.find((e) => e.pid !== victimPid)!;
    process.kill(survivor.pid, 'SIGKILL');
    const q = generatePhantom({ size: [64, 64, 8], seed: 13 });
    const path2 = join(work, 'none.nii.gz');
    await writeFile(path2, phantomToNifti(q, { gzip: true }).image);
    const t0 = performance.now();
    const err = await gw.analyse(path2, { embeddingOutputs: [CLS] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe(Status.UNAVAILABLE);
    expect(performance.now() - t0).toBeLessThan(10_000);
  }, 180_000);
});
