import { CuriaError } from '@curia/errors';
import { patchTokens, projectTokens, type EmbedEngine } from '@curia/model';
import { bundlePreprocessSpec, preprocessSlices, type PreprocessSpec, type Volume } from '@curia/volume';

import type { GridField } from './field.js';
import { CURIA_FEATURE_CHANNELS } from './register-volumes.js';
import {
  fitTokenProjection,
  PCA_SAMPLE_SLICES,
  sampleSlices,
  TokenFieldAssembler,
  tokenGrid,
  type TokenProjection,
} from './token-features.js';

/**
 * Curia token features computed in-process, with the engines the Preprocess and Embed services run
 * (`@curia/volume` slice preprocessing with the bundle's spec, an `EmbedEngine` for the ViT): the same
 * fields the Register service assembles over gRPC, for benches, tests and local runs.
 */

/** Slices per ViT call (the Embed service's batch). */
export const TOKEN_EMBED_BATCH = 8;

/** Options of {@link embedTokenFields}. */
export interface EmbedTokenFieldsOptions {
  /** Projected channels (default {@link CURIA_FEATURE_CHANNELS}). */
  readonly channels?: number;
  /** Slices per volume whose full tokens fit the PCA (default {@link PCA_SAMPLE_SLICES}). */
  readonly sampleSlices?: number;
  /** Slices per ViT call (default {@link TOKEN_EMBED_BATCH}, at most the engine's maxBatch). */
  readonly batch?: number;
  readonly signal?: AbortSignal;
}

/** Where the time of {@link embedTokenFields} went, ms. */
export interface TokenFieldTimings {
  /** Reading and preprocessing slices (resize, z-score). */
  readonly preprocess: number;
  /** ViT forward passes. */
  readonly vit: number;
  /** PCA fit and projecting every slice's tokens. */
  readonly projection: number;
}

/** Every volume's projected token field and how it was made. */
export interface EmbeddedTokenFields {
  /** One per volume, in order, each on its {@link tokenGrid}. */
  readonly fields: GridField[];
  /** The joint projection (fitted on the sample slices of every volume). */
  readonly projection: TokenProjection;
  /** Slices through the ViT (each slice once). */
  readonly slicesEmbedded: number;
  readonly timings: TokenFieldTimings;
}

interface Clock {
  preprocess: number;
  vit: number;
}

/**
 * Preprocesses canonical slices `indices` of `volume` with `spec` and runs them through the ViT in
 * batches, handing each slice's post-LayerNorm patch tokens ([G², D], a view into the batch output)
 * to `take`.
 */
async function embedSlices(
  engine: EmbedEngine,
  volume: Volume,
  indices: readonly number[],
  o: { spec: PreprocessSpec; batch: number; clock: Clock; signal: AbortSignal | undefined },
  take: (canonicalIndex: number, patches: Float32Array) => void,
): Promise<void> {
  if (indices.length === 0) return;
  const per = engine.pixelsPerSlice;
  const pixels = new Float32Array(o.batch * per);
  const pending: number[] = [];
  const flush = async (): Promise<void> => {
    const n = pending.length;
    if (n === 0) return;
    const t = performance.now();
    const r = await engine.run(pixels.subarray(0, n * per), n, {
      outputs: ['last_hidden_state'],
      ...(o.signal ? { signal: o.signal } : {}),
    });
    o.clock.vit += performance.now() - t;
    pending.forEach((k, i) => take(k, patchTokens(r.lastHiddenState!, r, i)));
    pending.length = 0;
  };
  let t = performance.now();
  for await (const s of preprocessSlices(volume, {
    spec: o.spec,
    selection: { kind: 'indices', indices },
    ...(o.signal ? { signal: o.signal } : {}),
  })) {
    pixels.set(s.pixels, pending.length * per);
    pending.push(s.canonicalIndex);
    o.clock.preprocess += performance.now() - t;
    if (pending.length === o.batch) await flush();
    t = performance.now();
  }
  await flush();
}

/**
 * Curia token features of several volumes (a pair: fixed and moving), in one space: every canonical
 * slice is preprocessed with the engine's bundle spec and embedded once; the patch tokens of
 * {@link sampleSlices} of each volume (embedded first, kept whole) fit a joint PCA
 * ({@link fitTokenProjection}), and every slice's tokens are projected onto it and assembled on the
 * volume's {@link tokenGrid}. The Register service's recipe, with the sample slices embedded once
 * instead of twice (in-process, their full tokens cost nothing to keep) and in float32 throughout.
 * Memory beyond the fields: the sample slices' tokens and one batch.
 */
export async function embedTokenFields(
  engine: EmbedEngine,
  volumes: readonly Volume[],
  o: EmbedTokenFieldsOptions = {},
): Promise<EmbeddedTokenFields> {
  if (volumes.length === 0) throw new CuriaError('INTERNAL', 'no volume to embed');
  const info = engine.info();
  const manifest = engine.bundle.manifest;
  const patch = manifest.architecture.patch_size;
  const g = info.imageSize / patch;
  if (!Number.isInteger(g) || info.tokens !== 1 + info.numRegisterTokens + g * g) {
    throw new CuriaError(
      'INTERNAL',
      `bundle '${info.name}': ${info.tokens} tokens at image ${info.imageSize} / patch ${patch} form no square grid`,
    );
  }
  const spec = bundlePreprocessSpec(manifest.preprocess);
  const [h, w] = spec.targetSize;
  if (h * w * info.numChannels !== engine.pixelsPerSlice) {
    throw new CuriaError(
      'INTERNAL',
      `bundle '${info.name}' preprocesses to ${h}×${w} but its ViT takes ${info.numChannels}×${info.imageSize}²`,
    );
  }
  const dim = info.hidden;
  const channels = o.channels ?? CURIA_FEATURE_CHANNELS;
  const batch = Math.min(o.batch ?? TOKEN_EMBED_BATCH, info.maxBatch);
  const clock: Clock = { preprocess: 0, vit: 0 };
  const run = { spec, batch, clock, signal: o.signal };
  let projectionMs = 0;
  let embedded = 0;

  // 1. The sample slices of every volume, kept whole, fit the joint PCA.
  const kept = volumes.map(() => new Map<number, Float32Array>());
  for (const [i, volume] of volumes.entries()) {
    const indices = sampleSlices(volume.sliceCount, o.sampleSlices ?? PCA_SAMPLE_SLICES);
    await embedSlices(engine, volume, indices, run, (k, patches) => {
      kept[i]!.set(k, patches.slice());
      embedded++;
    });
  }
  let t = performance.now();
  const projection = fitTokenProjection(
    kept.flatMap((m) => [...m.values()]),
    dim,
    channels,
  );
  const project = (patches: Float32Array): Float32Array =>
    projectTokens(patches, projection.basis, projection.mean, dim, channels);
  projectionMs += performance.now() - t;

  // 2. Every slice projected: the kept ones from their tokens, the others embedded now.
  const fields: GridField[] = [];
  for (const [i, volume] of volumes.entries()) {
    const assembler = new TokenFieldAssembler(tokenGrid(volume.geometry, g), channels);
    const rest = Array.from({ length: volume.sliceCount }, (_, k) => k).filter((k) => !kept[i]!.has(k));
    t = performance.now();
    for (const [k, patches] of kept[i]!) assembler.addSlice(k, project(patches));
    kept[i]!.clear();
    projectionMs += performance.now() - t;
    await embedSlices(engine, volume, rest, run, (k, patches) => {
      const tp = performance.now();
      assembler.addSlice(k, project(patches));
      projectionMs += performance.now() - tp;
      embedded++;
    });
    fields.push(assembler.field());
  }
  return {
    fields,
    projection,
    slicesEmbedded: embedded,
    timings: { preprocess: clock.preprocess, vit: clock.vit, projection: projectionMs },
  };
}
