import { wireFloats } from '@curia/client';
import { CuriaError } from '@curia/errors';
import { common, type preprocess } from '@curia/proto';
import type { ModelGrid, StudyGrid } from '@curia/segment';
import {
  embedStudy,
  openPreprocess,
  type EmbeddingCache,
  type PreprocessStream,
  type StageClients,
} from '@curia/stages';

import type { SegmentEnv } from './config.js';

/** The patch-token request every segmentation path uses: post-LayerNorm tokens, F16 on the wire. */
export const PATCH_TOKENS: common.FeatureRequest = {
  kind: { $case: 'patchTokens', value: { prenorm: false } },
  dtype: common.DType.F16,
};

/** The engine's grid of a study, from the canonical geometry Preprocess reported. */
export function studyGridOf(g: common.CanonicalGeometry | undefined): StudyGrid {
  const input = g?.input;
  const axes = g?.canonicalToInputAxes ?? [];
  const flips = g?.canonicalAxisFlipped ?? [];
  const affine = input?.affine;
  if (
    !input ||
    input.dims.length < 3 ||
    input.spacingMm.length < 3 ||
    !affine ||
    affine.m.length !== 16 ||
    affine.frame === common.CoordinateFrame.UNSPECIFIED ||
    axes.length !== 3 ||
    flips.length !== 3 ||
    [...axes].sort().join() !== '0,1,2'
  ) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      'geometry: the canonical geometry is incomplete (input dims, spacing, affine and axis mapping are required)',
    );
  }
  const dims = input.dims.slice(0, 3).map(Number) as [number, number, number];
  if (dims.some((d) => !(Number.isSafeInteger(d) && d > 0)))
    throw new CuriaError('INVALID_ARGUMENT', 'geometry.input.dims must be positive');
  const axis = (a: number) => ({ inputAxis: axes[a] as 0 | 1 | 2, flip: flips[a]! });
  const col = axis(0);
  const row = axis(1);
  const slice = axis(2);
  return {
    inputDims: dims,
    inputSpacing: input.spacingMm.slice(0, 3) as [number, number, number],
    inputAffine: [...affine.m],
    inputFrame: affine.frame === common.CoordinateFrame.RAS ? 'RAS' : 'LPS',
    canonicalDims: [dims[slice.inputAxis], dims[row.inputAxis], dims[col.inputAxis]],
    axes: { col, row, slice },
  };
}

/** The model's image and token grids, from what Embed reported. */
export function modelGridOf(m: common.ModelInfo): ModelGrid {
  const a = m.architecture;
  if (!a || !a.imageSize || !a.patchSize || a.imageSize % a.patchSize !== 0) {
    throw new CuriaError('INTERNAL', `model '${m.name}@${m.version}' reports no usable image and patch size`);
  }
  return { imageSize: a.imageSize, patchSize: a.patchSize };
}

/** Everything a study's segmentation needs from the stages. */
export interface StudyDeps {
  readonly env: SegmentEnv;
  readonly stages: StageClients;
  readonly cache: EmbeddingCache;
  readonly onRetry: (stage: string) => void;
}

/** Opens the Preprocess call of a study (forwarding its upload) and waits for its geometry. */
export function preprocessStudy(
  deps: StudyDeps,
  o: {
    readonly start: preprocess.PreprocessStart;
    readonly upload: AsyncIterator<common.FileChunk> | undefined;
    readonly signal: AbortSignal;
    readonly deadline: Date;
  },
): Promise<PreprocessStream> {
  return openPreprocess(deps.stages.preprocess, {
    start: o.start,
    upload: o.upload,
    maxUploadBytes: deps.env.CURIA_SEGMENT_MAX_UPLOAD_BYTES,
    uploadLimitName: 'CURIA_SEGMENT_MAX_UPLOAD_BYTES',
    attempts: deps.env.CURIA_SEGMENT_STAGE_ATTEMPTS,
    signal: o.signal,
    deadline: o.deadline,
    onRetry: () => deps.onRetry('preprocess'),
  });
}

/** One canonical slice's patch tokens. */
export interface SliceTokens {
  readonly mapping: common.SliceMapping;
  /** The wire tensor (F16, [G·G, D]), as Embed or the cache returned it. */
  readonly tensor: common.Tensor;
  /** True when it came from the cache. */
  readonly cached: boolean;
}

/** Patch tokens of the study's preprocessed slices that `want` selects, in canonical order, through the cache or Embed. */
export function tokensOf(
  deps: StudyDeps,
  pre: PreprocessStream,
  o: {
    readonly model: common.ModelInfo;
    readonly studyId: string;
    readonly want?: (canonicalIndex: number) => boolean;
    readonly signal: AbortSignal;
    readonly deadline: Date;
  },
): AsyncGenerator<SliceTokens> {
  const { env } = deps;
  return (async function* () {
    for await (const e of embedStudy(pre.slices(), {
      client: deps.stages.embed,
      model: o.model,
      outputs: [PATCH_TOKENS],
      studyId: o.studyId,
      select: (s) => (!o.want || o.want(s.mapping!.canonicalIndex) ? { outputs: [0] } : undefined),
      cache: deps.cache,
      window: env.CURIA_SEGMENT_EMBED_WINDOW,
      attempts: env.CURIA_SEGMENT_STAGE_ATTEMPTS,
      signal: o.signal,
      deadline: o.deadline,
      onRetry: () => deps.onRetry('embed'),
    })) {
      const tensor = e.features[0];
      if (!tensor)
        throw new CuriaError(
          'INTERNAL',
          `embed returned no patch tokens for slice ${e.mapping.canonicalIndex}`,
        );
      yield { mapping: e.mapping, tensor, cached: e.cached };
    }
  })();
}

/** A slice's patch tokens as float32 [G·G × D], checked against the model's grid and width. */
export function tokenValues(t: common.Tensor, grid: ModelGrid, dim: number, field: string): Float32Array {
  const g = grid.imageSize / grid.patchSize;
  return wireFloats(t, field, { dtypes: ['F16', 'F32'], shape: [g * g, dim], finite: true, own: true });
}
