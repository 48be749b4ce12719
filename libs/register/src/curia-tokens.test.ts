import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { buildRandomBundle, EmbedEngine, patchTokens, projectTokens } from '@curia/model';
import { generatePhantom, phantomImageNifti, type PhantomOptions } from '@curia/phantom';
import { bundlePreprocessSpec, openVolume, preprocessSlices, type Volume } from '@curia/volume';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { embedTokenFields } from './curia-tokens.js';
import { CURIA_FEATURE_CHANNELS } from './register-volumes.js';
import { sampleSlices, tokenGrid } from './token-features.js';

// A tiny random ViT at 64 px / patch 16 (a 4 × 4 token grid, hidden 96) keeps the test fast.
const G = 4;
let dir: string;
let engine: EmbedEngine;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'curia-register-tokens-'));
  const b = await buildRandomBundle(join(dir, 'tiny'), {
    preset: 'tiny',
    seed: 5,
    overrides: { image_size: 64 },
  });
  engine = await EmbedEngine.open(b.dir, { intraOpThreads: 1, maxBatch: 8 });
});

afterAll(async () => {
  await engine?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const phantomVolume = (o: PhantomOptions): Promise<Volume> =>
  openVolume({ kind: 'bytes', data: phantomImageNifti(generatePhantom(o), { gzip: false }) });

describe('embedTokenFields', () => {
  it('gives each volume its token grid with the projected channels, every slice embedded once', async () => {
    const fixed = await phantomVolume({ size: [40, 32, 5], noiseSigma: 0 });
    const moving = await phantomVolume({ size: [36, 36, 4], orientation: 'RAS', seed: 3 });
    const r = await embedTokenFields(engine, [fixed, moving], { sampleSlices: 2, batch: 3 });

    expect(r.slicesEmbedded).toBe(5 + 4);
    expect(r.projection.dim).toBe(96);
    expect(r.projection.channels).toBe(CURIA_FEATURE_CHANNELS);
    for (const [i, v] of [fixed, moving].entries()) {
      const f = r.fields[i]!;
      expect(f.grid).toEqual(tokenGrid(v.geometry, G));
      expect(f.grid.dims).toEqual([G, G, v.sliceCount]);
      expect(f.channels).toBe(CURIA_FEATURE_CHANNELS);
      expect(f.data.length).toBe(CURIA_FEATURE_CHANNELS * G * G * v.sliceCount);
      expect(f.data.every(Number.isFinite)).toBe(true);
    }
    for (const t of Object.values(r.timings)) expect(t).toBeGreaterThanOrEqual(0);

    // Slice by slice, the field is the bundle's preprocessing, the ViT's patch tokens and the
    // projection: a sample slice (projected from its kept tokens) and one embedded afterwards.
    const spec = bundlePreprocessSpec(engine.bundle.manifest.preprocess);
    const sampled = sampleSlices(fixed.sliceCount, 2);
    const later = [0, 1, 2, 3, 4].find((k) => !sampled.includes(k))!;
    const n = G * G * fixed.sliceCount;
    for (const k of [sampled[0]!, later]) {
      const slices = preprocessSlices(fixed, { spec, selection: { kind: 'indices', indices: [k] } });
      const s = (await slices.next()).value!;
      const run = await engine.run(s.pixels, 1);
      const want = projectTokens(
        patchTokens(run.lastHiddenState!, run),
        r.projection.basis,
        r.projection.mean,
        96,
        CURIA_FEATURE_CHANNELS,
      );
      for (let t = 0; t < G * G; t++)
        for (let c = 0; c < CURIA_FEATURE_CHANNELS; c++) {
          const got = r.fields[0]!.data[c * n + k * G * G + t]!;
          expect(Math.abs(got - want[t * CURIA_FEATURE_CHANNELS + c]!)).toBeLessThan(1e-3);
        }
    }
  });
});
