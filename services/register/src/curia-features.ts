import { wireFloats, wireTensorOf } from '@curia/client';
import { CuriaError } from '@curia/errors';
import { fileChunks } from '@curia/kit';
import { projectTokens } from '@curia/model';
import { common, type preprocess } from '@curia/proto';
import {
  CURIA_FEATURE_CHANNELS,
  fitTokenProjection,
  sampleSlices,
  TokenFieldAssembler,
  tokenGrid,
  type GridField,
  type TokenProjection,
} from '@curia/register';
import { embedStudy, openPreprocess, type StageClients } from '@curia/stages';

import type { RegisterEnv } from './config.js';
import type { OpenedInput } from './inputs.js';

/** What the Curia features of a pair need from the service. */
export interface CuriaFeatureDeps {
  readonly env: RegisterEnv;
  readonly stages: StageClients;
  readonly onRetry: (stage: string) => void;
}

/** Both images' projected token fields and how they were made. */
export interface CuriaTokenFields {
  readonly fixed: GridField;
  readonly moving: GridField;
  readonly model: common.ModelInfo;
  readonly projection: TokenProjection;
  /** Slices embedded, both images (every slice once: the PCA's sample slices are projected here). */
  readonly slicesEmbedded: number;
}

const f32Tensor = (v: Float32Array, shape: number[]): common.Tensor =>
  wireTensorOf({ dtype: 'F32', shape, data: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) });

const PATCH_TOKENS: common.FeatureRequest = {
  kind: { $case: 'patchTokens', value: { prenorm: false } },
  dtype: common.DType.F16,
};

/** The PreprocessStart forwarding an input as it came (ref, or its held files as a fresh upload). */
function preprocessStart(
  input: OpenedInput,
  bundle: string,
  selection: common.SliceSelection,
): { start: preprocess.PreprocessStart; upload: AsyncIterator<common.FileChunk> | undefined } {
  const source = input.input.source!;
  const options: common.PreprocessOptions = {
    modelBundle: bundle,
    outputDtype: common.DType.F16,
    selection,
  };
  const header = {
    ...common.StudyHeader.fromPartial(input.input.header ?? {}),
    studyId: input.input.header?.studyId ?? '',
  };
  if (source.$case === 'ref') {
    return { start: { header, source, options }, upload: undefined };
  }
  const files = input.files ?? [];
  const chunks = (function* () {
    for (const f of files) yield* fileChunks(f.data, f.name, (c) => c);
  })();
  const upload: AsyncIterator<common.FileChunk> = { next: () => Promise.resolve(chunks.next()) };
  const totalBytes = files.reduce((s, f) => s + f.data.length, 0);
  return {
    start: { header, source: { $case: 'streamed', value: { fileCount: files.length, totalBytes } }, options },
    upload,
  };
}

/**
 * Curia token features of both images: the backbone's patch tokens of a few slices of each image fit a
 * PCA (mean and {@link CURIA_FEATURE_CHANNELS} directions, joint over both images so their features
 * share one space), then the sample slices are projected here and every other slice is embedded with Embed's
 * `projected_tokens` output (C values per token instead of D: 64× less traffic at D = 768), so each
 * slice goes through the ViT once; all are assembled on the image's token grid.
 * Slices go through Preprocess (the backbone's bundle spec) and Embed like any other Curia call.
 */
export async function curiaTokenFields(
  deps: CuriaFeatureDeps,
  o: {
    readonly backbone: string;
    readonly fixed: OpenedInput;
    readonly moving: OpenedInput;
    readonly studyId: string;
    readonly signal: AbortSignal;
    readonly deadline: Date;
  },
): Promise<CuriaTokenFields> {
  const { env, stages } = deps;
  const model = await stages.resolveModel(o.backbone, o.signal, 'start.options.backbone');
  const arch = model.architecture;
  if (!arch?.imageSize || !arch.patchSize || !arch.hiddenSize || arch.imageSize % arch.patchSize !== 0) {
    throw new CuriaError(
      'INTERNAL',
      `backbone '${model.name}@${model.version}' reports no usable grid or width`,
    );
  }
  const g = arch.imageSize / arch.patchSize;
  const dim = arch.hiddenSize;
  const ref = `${model.name}@${model.version}`;
  const bundle = (await stages.preprocessKnows(ref, o.signal)) ? ref : '';
  let embedded = 0;

  /** Runs one image through Preprocess and Embed, handing each slice's first output to `take`. */
  const run = async (
    input: OpenedInput,
    selection: common.SliceSelection,
    output: common.FeatureRequest,
    take: (canonicalIndex: number, t: common.Tensor) => void,
  ): Promise<void> => {
    const { start, upload } = preprocessStart(input, bundle, selection);
    const pre = await openPreprocess(stages.preprocess, {
      start,
      upload,
      maxUploadBytes: env.CURIA_REGISTER_MAX_UPLOAD_BYTES,
      uploadLimitName: 'CURIA_REGISTER_MAX_UPLOAD_BYTES',
      attempts: env.CURIA_REGISTER_STAGE_ATTEMPTS,
      signal: o.signal,
      deadline: o.deadline,
      onRetry: () => deps.onRetry('preprocess'),
    });
    try {
      const slices = pre.geometry.numCanonicalSlices;
      if (slices !== input.volume.geometry.canonicalDims[0]) {
        throw new CuriaError(
          'INTERNAL',
          `preprocess found ${slices} canonical slices in '${input.input.inputId}', this service ${input.volume.geometry.canonicalDims[0]}`,
        );
      }
      for await (const e of embedStudy(pre.slices(), {
        client: stages.embed,
        model,
        outputs: [output],
        studyId: o.studyId,
        select: () => ({ outputs: [0] }),
        window: env.CURIA_REGISTER_EMBED_WINDOW,
        attempts: env.CURIA_REGISTER_STAGE_ATTEMPTS,
        signal: o.signal,
        deadline: o.deadline,
        onRetry: () => deps.onRetry('embed'),
      })) {
        const t = e.features[0];
        if (!t)
          throw new CuriaError('INTERNAL', `embed returned no tokens for slice ${e.mapping.canonicalIndex}`);
        embedded++;
        take(e.mapping.canonicalIndex, t);
      }
    } finally {
      pre.close();
    }
  };

  // 1. PCA on a few slices of each image; their tokens are kept and projected here in step 2.
  const kept: Map<number, Float32Array>[] = [];
  for (const input of [o.fixed, o.moving]) {
    const indices = sampleSlices(input.volume.geometry.canonicalDims[0]);
    const tokens = new Map<number, Float32Array>();
    await run(input, { selection: { $case: 'indices', value: { indices } } }, PATCH_TOKENS, (k, t) =>
      tokens.set(
        k,
        wireFloats(t, 'patch_tokens', {
          dtypes: ['F16', 'F32'],
          shape: [g * g, dim],
          finite: true,
          own: true,
        }),
      ),
    );
    kept.push(tokens);
  }
  const projection = fitTokenProjection(
    kept.flatMap((m) => [...m.values()]),
    dim,
    CURIA_FEATURE_CHANNELS,
  );

  // 2. Every other slice embedded with the projection applied by Embed (C values per token on the wire).
  const projected: common.FeatureRequest = {
    kind: {
      $case: 'projectedTokens',
      value: {
        prenorm: false,
        basis: f32Tensor(projection.basis, [dim, CURIA_FEATURE_CHANNELS]),
        mean: f32Tensor(projection.mean, [dim]),
      },
    },
    dtype: common.DType.F32,
  };
  const fields: GridField[] = [];
  for (const [i, input] of [o.fixed, o.moving].entries()) {
    const grid = tokenGrid(input.volume.geometry, g);
    const assembler = new TokenFieldAssembler(grid, CURIA_FEATURE_CHANNELS);
    const samples = kept[i]!;
    for (const [k, tokens] of samples) {
      assembler.addSlice(
        k,
        projectTokens(tokens, projection.basis, projection.mean, dim, CURIA_FEATURE_CHANNELS),
      );
    }
    const rest = Array.from({ length: input.volume.geometry.canonicalDims[0] }, (_, k) => k).filter(
      (k) => !samples.has(k),
    );
    samples.clear();
    if (rest.length > 0) {
      await run(input, { selection: { $case: 'indices', value: { indices: rest } } }, projected, (k, t) =>
        assembler.addSlice(
          k,
          wireFloats(t, 'projected_tokens', {
            dtypes: ['F32', 'F16'],
            shape: [g * g, CURIA_FEATURE_CHANNELS],
            finite: true,
          }),
        ),
      );
    }
    fields.push(assembler.field());
  }
  return { fixed: fields[0]!, moving: fields[1]!, model, projection, slicesEmbedded: embedded };
}
