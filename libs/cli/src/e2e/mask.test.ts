import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  ClientError,
  common,
  runLengthMask,
  Status,
  wireFloats,
  type AnalyzeStudyStartFields,
} from '@curia/client';
import { loadHead } from '@curia/heads';
import { maskPool, maskToTokenGrid, patchTokens } from '@curia/model';
import { generatePhantom, phantomImageNifti, phantomLabelsNifti, PHANTOM_LABEL_NAMES } from '@curia/phantom';
import { canonicalToInputIndex, preprocessToTensor } from '@curia/volume';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { GatewayCluster } from './gateway-cluster.js';

/**
 * Region-of-interest masks through the spawned cluster: a phantom's liver label, sent as an RLE
 * mask on the input grid, gives the same mask-pooled embeddings as the in-process engines on a
 * mask that this test reorients and nearest-resizes itself; slices without liver carry no pooled
 * feature; a head fitted on pooled features reads only the liver slices.
 */
const CLS: common.FeatureRequest = {
  kind: { $case: 'cls', value: { prenorm: false } },
  dtype: common.DType.F32,
};
const POOLED: common.FeatureRequest = {
  kind: { $case: 'maskPooled', value: { prenorm: false } },
  dtype: common.DType.F32,
};
const LIVER = PHANTOM_LABEL_NAMES.indexOf('liver');
const SIZE = 512;

describe('AnalyzeStudy with a region-of-interest mask through the spawned cluster', () => {
  let gw: GatewayCluster;
  let work: string;
  let path: string;
  // 12 slices of 20 mm: the liver is in 5 of them, so 7 have an empty mask.
  const phantom = generatePhantom({ size: [96, 96, 12], spacing: [4.2, 4.2, 20], orientation: 'RAS' });
  const [nx, ny] = phantom.dims;
  /** Whether input voxel (i, j, k) is liver (the label map is stored i fastest). */
  const inLiver = (i: number, j: number, k: number): boolean =>
    phantom.labels[i + nx * (j + ny * k)] === LIVER;
  const mask: common.InputMask = {
    mask: { $case: 'rle', value: runLengthMask(phantom.dims, inLiver, 'liver') },
  };
  const analyse = (fields: AnalyzeStudyStartFields) => gw.analyse(path, fields);

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'curia-e2e-mask-'));
    path = join(work, 'phantom.nii.gz');
    await writeFile(path, phantomImageNifti(phantom));
    gw = await GatewayCluster.start('e2e-mask', {
      ports: 'dynamic',
      only: ['preprocess', 'embed', 'heads', 'gateway'],
      env: { CURIA_HEADS_DIR: join(work, 'heads'), CURIA_SHUTDOWN_GRACE_MS: '2000' },
    });
  }, 240_000);

  afterAll(async () => {
    await gw?.close();
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  /** Mask-pooled features computed in this process, keyed by canonical index (liver slices only). */
  async function inProcessPooled(): Promise<Map<number, { pooled: Float32Array; tokens: number }>> {
    const t = await preprocessToTensor({ kind: 'path', path });
    const g = t.geometry;
    const [, rows, cols] = g.canonicalDims;
    // geometry.proto: pixel (r, c) is centred at canonical (c + 0.5)·cols/W − 0.5; nearest = rounded.
    const near = (d: number, n: number): number =>
      Math.min(n - 1, Math.max(0, Math.round((d + 0.5) * (n / SIZE) - 0.5)));
    const out = new Map<number, { pooled: Float32Array; tokens: number }>();
    for (let b = 0; b < t.indices.length; b++) {
      const k = t.indices[b]!;
      const m = new Uint8Array(SIZE * SIZE);
      let inside = 0;
      for (let r = 0; r < SIZE; r++)
        for (let c = 0; c < SIZE; c++) {
          const [i, j, kk] = canonicalToInputIndex(g, k, near(r, rows), near(c, cols));
          if (inLiver(i, j, kk)) {
            m[r * SIZE + c] = 1;
            inside++;
          }
        }
      if (inside === 0) continue;
      const run = await gw.engine.run(t.pixelValues.subarray(b * SIZE * SIZE, (b + 1) * SIZE * SIZE), 1);
      const patches = patchTokens(run.lastHiddenState!, run, 0);
      const tokens = maskToTokenGrid(m, Math.sqrt(patches.length / run.hidden)).reduce((a, v) => a + v, 0);
      out.set(k, { pooled: maskPool(patches, m, run.hidden), tokens });
    }
    return out;
  }

  it('returns mask-pooled embeddings equal to the in-process engines, only where the liver is', async () => {
    const r = await analyse({ embeddingOutputs: [POOLED, CLS], mask });
    const expected = await inProcessPooled();
    expect(expected.size).toBe(5);
    expect(r.geometry?.numCanonicalSlices).toBe(12);
    expect(r.summary?.cache).toEqual({ hits: 0, misses: 12 });
    // Every slice comes back with its CLS; the pooled feature only where the mask is non-empty.
    expect(r.embeddings.map((e) => e.mapping!.canonicalIndex)).toEqual([...Array(12).keys()]);
    let maxDiff = 0;
    for (const e of r.embeddings) {
      const k = e.mapping!.canonicalIndex;
      expect(e.features[1]!.tensor).toBeDefined();
      const want = expected.get(k)?.pooled;
      if (!want) {
        expect(e.features[0]!.tensor).toBeUndefined();
        continue;
      }
      const got = wireFloats(e.features[0]!.tensor);
      expect(got.length).toBe(want.length);
      for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
    }
    expect(maxDiff).toBeLessThan(1e-4);

    // A head fitted on the pooled features requires a mask and reads only the liver slices.
    const liverSlices = [...expected.keys()].sort((a, b) => a - b);
    const fitted = await gw.fitClassifier({
      head: 'e2e-liver',
      model: `${r.summary!.model!.name}@${r.summary!.model!.version}`,
      feature: POOLED,
      labelNames: ['lower', 'upper'],
      samples: r.embeddings
        .filter((e) => e.features[0]!.tensor)
        .map((e, i) => ({ features: e.features[0]!.tensor, classIndex: i < 2 ? 0 : 1 })),
    });
    expect(fitted.head?.requirements?.requiresMask).toBe(true);
    const ref = `${fitted.head!.name}@${fitted.head!.version}`;
    const err = await analyse({ heads: [ref] }).catch((e: unknown) => e);
    expect((err as ClientError).code).toBe(Status.INVALID_ARGUMENT);
    expect((err as ClientError).details).toMatch(/needs a region of interest: set mask/);

    const second = await analyse({ heads: [ref], mask, returnSlicePredictions: true });
    expect(second.summary?.cache).toEqual({ hits: 5, misses: 0 });
    const result = second.heads[0]!;
    expect(result.slices.map((s) => s.sliceId)).toEqual(liverSlices);
    const head = await loadHead(join(work, 'heads', 'e2e-liver', fitted.head!.version));
    const hidden = gw.engine.info().hidden;
    const pooled = new Float32Array(liverSlices.length * hidden);
    liverSlices.forEach((k, i) => pooled.set(expected.get(k)!.pooled, i * hidden));
    const maskCounts = Float64Array.from(liverSlices, (k) => expected.get(k)!.tokens);
    const local = await head.run({
      slices: liverSlices.length,
      hidden,
      blocks: [{ data: pooled, tokensPerSlice: 1, maskCounts }],
    });
    result.slices.forEach((s, i) => {
      const logits = wireFloats(s.prediction!.logits);
      for (let c = 0; c < local.outputs; c++)
        expect(logits[c]).toBeCloseTo(local.logits[i * local.outputs + c]!, 4);
    });

    // The same region as a NIfTI label file (values 0/1 on the input grid): identical model-grid
    // masks, hence identical cache digests, so every slice is a cache hit with the same features.
    const labels01 = Uint8Array.from(phantom.labels, (v) => (v === LIVER ? 1 : 0));
    const nifti = phantomLabelsNifti({ ...phantom, labels: labels01 });
    const third = await analyse({
      embeddingOutputs: [POOLED, CLS],
      mask: { mask: { $case: 'nifti', value: nifti } },
    });
    expect(third.summary?.cache).toEqual({ hits: 12, misses: 0 });
    third.embeddings.forEach((e, i) => {
      const before = r.embeddings[i]!.features[0]!.tensor;
      expect(e.features[0]!.tensor?.data).toEqual(before?.data);
    });
  }, 180_000);

  it('rejects a mask that is not on the study grid, naming the field', async () => {
    const [nx, ny, nz] = phantom.dims;
    const wrong: common.InputMask = {
      mask: { $case: 'rle', value: { dims: [nx, ny, nz + 1], counts: [nx * ny * (nz + 1)], label: '' } },
    };
    const err = await analyse({ embeddingOutputs: [POOLED], mask: wrong }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe(Status.INVALID_ARGUMENT);
    expect((err as ClientError).details).toMatch(/start\.mask\.rle\.dims \[96, 96, 13\] does not match/);
    const bad: common.InputMask = {
      mask: { $case: 'rle', value: { dims: [nx, ny, nz], counts: [5], label: '' } },
    };
    const err2 = await analyse({ embeddingOutputs: [POOLED], mask: bad }).catch((e: unknown) => e);
    expect((err2 as ClientError).details).toMatch(/start\.mask\.rle\.counts sum to 5/);
  }, 60_000);
});
