import { CuriaError } from '@curia/errors';
import { checkStudyId, withSpan, type CuriaCallContext } from '@curia/kit';
import type { common, gateway, heads } from '@curia/proto';
import type { Logger } from 'pino';

import type { Backends } from './backends.js';
import type { GatewayEnv } from './config.js';
import { embedSlices, type SliceToEmbed } from './embed-stream.js';
import { EmbeddingCache, sliceDigest } from './embedding-cache.js';
import { CanonicalMaskSampler, wholeImageMask } from './mask/canonical-mask.js';
import { restrictToMask, type MaskedNeeds } from './mask/coverage.js';
import { checkMaskGrid, decodeInputMask, type InputGridMask } from './mask/input-mask.js';
import type { GatewayMetrics } from './metrics.js';
import { planAnalysis, preprocessSelection, sliceNeeds, type AnalysisPlan, type SliceNeeds } from './plan.js';
import { openPreprocess, type PreprocessStream } from './preprocess-stream.js';
import { stageDeadlines } from './stage-deadlines.js';
import { stageError } from './stage-errors.js';

/** What one AnalyzeStudy call needs from the gateway process. */
export interface AnalyzeDeps {
  readonly env: GatewayEnv;
  readonly backends: Backends;
  readonly cache: EmbeddingCache;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
}

type Response = gateway.AnalyzeStudyResponse;

const progress = (stage: string, done: number, total: number, message = ''): Response => ({
  msg: { $case: 'progress', value: { stage, done, total, message } },
});

/** One slice on its way through the pipeline, in canonical order. */
interface Entry {
  readonly mapping: common.SliceMapping;
  /** True when the slice's resized mask is empty (it was sent with a whole-image placeholder). */
  readonly emptyMask?: boolean;
  /** Output tensors by position in the plan's outputs; null until embedded (or read from the cache). */
  features: (common.Tensor | undefined)[] | null;
}

/**
 * AnalyzeStudy: validates everything first (heads, outputs, model), then streams the study
 * through Preprocess → (cache | Embed) → Heads. Slices flow into Embed while later ones are still
 * being preprocessed; at most CURIA_GATEWAY_EMBED_WINDOW slices are held per study, so memory
 * does not grow with the study. Every stage call carries the study's cancellation signal and a
 * deadline derived from the caller's.
 */
export async function* analyzeStudy(
  requests: AsyncIterable<gateway.AnalyzeStudyRequest>,
  context: CuriaCallContext & { signal: AbortSignal },
  deps: AnalyzeDeps,
): AsyncGenerator<Response> {
  const { env, backends, cache, metrics } = deps;
  const t0 = performance.now();
  const input = requests[Symbol.asyncIterator]();
  const first = await input.next();
  const start = first.done ? undefined : first.value.msg;
  if (start?.$case !== 'start') {
    throw new CuriaError('INVALID_ARGUMENT', 'the first AnalyzeStudy message must be `start`');
  }
  const s = start.value;
  const studyId = s.header?.studyId ?? '';
  checkStudyId(studyId);
  if (!s.source) throw new CuriaError('INVALID_ARGUMENT', 'start.source is required (ref or streamed)');
  // Decoded once per study, before any stage call, so a malformed mask costs no backend work.
  const tMask = performance.now();
  const inputMask = s.mask
    ? await decodeInputMask(s.mask, { maxVoxels: env.CURIA_GATEWAY_MAX_MASK_VOXELS }, context.signal)
    : undefined;
  const maskMs = performance.now() - tMask;
  const now = Date.now();
  const deadline = new Date(
    Math.min(context.deadline?.getTime() ?? Infinity, now + env.CURIA_GATEWAY_DEFAULT_DEADLINE_MS),
  );
  const deadlines = stageDeadlines(deadline, now, s.heads.length > 0);
  // One signal for every stage call of the study: the caller's cancellation, or our own failure.
  const study = new AbortController();
  const onCallerAbort = (): void => study.abort();
  context.signal.addEventListener('abort', onCallerAbort);
  const signal = study.signal;
  const timings: common.Timing[] = [];
  const timed = (stage: string, ms: number): void => {
    timings.push({ stage, millis: ms });
    metrics.stage.observe({ stage }, ms / 1000);
  };
  let hits = 0;
  let misses = 0;
  if (inputMask) timed('mask', maskMs);
  try {
    const [model, headInfos] = await Promise.all([
      backends.resolveModel(s.model, signal),
      backends.resolveHeads(s.heads, signal),
    ]);
    const modelRef = `${model.name}@${model.version}`;
    for (const h of headInfos) {
      if (h.model && h.model !== modelRef && h.model.split('@')[0] !== model.name) {
        throw new CuriaError(
          'FAILED_PRECONDITION',
          `head '${h.name}@${h.version}' was trained on '${h.model}', not on the requested model '${modelRef}'`,
        );
      }
    }
    const plan = planAnalysis(
      {
        embeddingOutputs: s.embeddingOutputs,
        embeddingSelection: s.embeddingSelection,
        hasMask: inputMask !== undefined,
      },
      headInfos,
    );
    if (plan.outputs.length === 0) {
      throw new CuriaError('INVALID_ARGUMENT', 'nothing to compute: name heads and/or embedding_outputs');
    }
    const bundle =
      s.preprocess?.modelBundle || ((await backends.preprocessKnows(modelRef, signal)) ? modelRef : '');
    const options: common.PreprocessOptions = {
      modelBundle: bundle,
      clipBelowAir: s.preprocess?.clipBelowAir,
      outputDtype: s.preprocess?.outputDtype ?? 0,
      selection: preprocessSelection(plan),
    };
    deps.log.info(
      { study_id: studyId, heads: s.heads.length, outputs: plan.outputs.length },
      'analysis started',
    );

    const pre = await withSpan('gateway.preprocess.open', { 'curia.study_id': studyId }, () =>
      openPreprocess(backends.preprocess, {
        start: { header: s.header, source: s.source, options },
        upload: s.source?.$case === 'streamed' ? input : undefined,
        maxUploadBytes: env.CURIA_GATEWAY_MAX_UPLOAD_BYTES,
        attempts: env.CURIA_GATEWAY_STAGE_ATTEMPTS,
        signal,
        deadline: deadlines.pipeline,
        onRetry: () => metrics.retries.inc({ stage: 'preprocess' }),
        onUploadDone: (ms) => timed('upload', ms),
      }),
    );
    const geometry = pre.geometry;
    const mask = inputMask ? maskForStudy(inputMask, pre, plan, studyId, deps.log) : undefined;
    const needs = mask?.needs ?? sliceNeeds(plan, geometry.numCanonicalSlices);
    yield {
      msg: {
        $case: 'geometry',
        value: {
          geometry: geometry.geometry,
          numCanonicalSlices: geometry.numCanonicalSlices,
          model,
          heads: plan.heads.map((h) => h.info),
        },
      },
    };
    const total = geometry.selectedCount;
    const tEmbed = performance.now();
    const order: Entry[] = [];
    let head = 0;
    const headInputs = new Map<number, (common.Tensor | undefined)[]>();
    const headSliceSet = new Set(needs.headSlices.flat());
    // Emits, in canonical order, every slice whose features are known.
    function* flush(): Generator<Response> {
      for (; head < order.length && order[head]!.features; head++) {
        const e = order[head]!;
        const idx = e.mapping.canonicalIndex;
        if (needs.embeddingSlices.has(idx)) {
          yield {
            msg: {
              $case: 'embedding',
              value: {
                mapping: e.mapping,
                features: plan.embeddingIndex.map((o, requestIndex) => ({
                  requestIndex,
                  tensor: e.features![o],
                })),
              },
            },
          };
        }
        if (headSliceSet.has(idx)) headInputs.set(idx, e.features!);
        e.features = [];
      }
    }
    const byId = new Map<number, Entry>();
    const source = slicesToEmbed(pre, plan, needs, mask, model.sha256, cache, order, byId, (hit) => {
      if (hit) hits++;
      else misses++;
    });
    let lastProgress = 0;
    const results = embedSlices(backends.embed, source, {
      start: { model: modelRef, outputs: [...plan.outputs], studyId },
      window: env.CURIA_GATEWAY_EMBED_WINDOW,
      attempts: env.CURIA_GATEWAY_STAGE_ATTEMPTS,
      signal,
      deadline: deadlines.pipeline,
      onRetry: () => metrics.retries.inc({ stage: 'embed' }),
    });
    for await (const r of results) {
      const entry = byId.get(r.slice.id);
      byId.delete(r.slice.id);
      if (!entry) throw new CuriaError('INTERNAL', `embed answered slice ${r.slice.id}, which was not sent`);
      const features: common.Tensor[] = [];
      for (const f of r.features) {
        if (!f.tensor || f.requestIndex >= plan.outputs.length) continue;
        // Pooled over the whole-image placeholder mask: meaningless, never returned or cached.
        if (entry.emptyMask && mask?.needs.maskOutputs.has(f.requestIndex)) continue;
        features[f.requestIndex] = f.tensor;
        if (cache.maxBytes > 0)
          cache.set(
            EmbeddingCache.key(model.sha256, digestOf(r.slice), plan.outputKeys[f.requestIndex]!),
            f.tensor,
          );
      }
      entry.features = features;
      yield* flush();
      const t = performance.now();
      if (t - lastProgress > 200) {
        lastProgress = t;
        yield progress('embed', head, total);
      }
    }
    yield* flush();
    if (head !== order.length) throw new CuriaError('INTERNAL', 'some slices were never embedded');
    metrics.cacheHits.inc(hits);
    metrics.cacheMisses.inc(misses);
    timed('preprocess', pre.elapsedMs());
    timed('embed', performance.now() - tEmbed);
    yield progress('embed', order.length, total, `${misses} embedded, ${hits} from cache`);

    const tHeads = performance.now();
    yield* runHeads(plan, needs, headInputs, s, modelRef, backends, signal, deadlines.heads);
    if (plan.heads.length > 0) timed('heads', performance.now() - tHeads);
    timed('total', performance.now() - t0);
    deps.log.info({ study_id: studyId, slices: order.length, hits, misses }, 'analysis done');
    yield {
      msg: {
        $case: 'done',
        value: {
          timings,
          cache: { hits, misses },
          model,
          demoWeights: model.demoWeights || plan.heads.some((h) => h.info.demo),
          slicesEmbedded: order.length,
        },
      },
    };
  } finally {
    context.signal.removeEventListener('abort', onCallerAbort);
    study.abort();
  }
}

/** The study's mask on the model grid and what each consumer reads once it is known. */
interface StudyMask {
  readonly sampler: CanonicalMaskSampler;
  /** What each consumer reads, restricted to slices where the resized mask is non-empty. */
  readonly needs: MaskedNeeds;
  /** Sent with slices whose ROI is empty but whose other outputs are needed. */
  readonly placeholder: common.Tensor;
}

/**
 * Checks the decoded mask against the study's input grid, and restricts the mask's consumers to
 * slices where the resized mask is non-empty.
 */
function maskForStudy(
  mask: InputGridMask,
  pre: PreprocessStream,
  plan: AnalysisPlan,
  studyId: string,
  log: Logger,
): StudyMask {
  const g = pre.geometry;
  checkMaskGrid(mask, g.geometry?.input);
  const height = g.spec?.height ?? 0;
  const width = g.spec?.width ?? 0;
  if (!g.geometry) throw new CuriaError('INTERNAL', 'preprocess sent no canonical geometry');
  const sampler = new CanonicalMaskSampler(mask, g.geometry, height, width);
  if (sampler.sliceCount !== g.numCanonicalSlices) {
    throw new CuriaError('INTERNAL', 'preprocess announced a slice count that differs from its geometry');
  }
  const needs = restrictToMask(
    plan,
    sliceNeeds(plan, g.numCanonicalSlices),
    (k) => sampler.covers(k),
    `${height}x${width}`,
  );
  log.info(
    { study_id: studyId, mask_voxels: mask.inside, empty_mask_slices: needs.emptyMask.size },
    'mask decoded',
  );
  return { sampler, needs, placeholder: wholeImageMask(height, width) };
}

const digests = new WeakMap<SliceToEmbed, string>();
function digestOf(s: SliceToEmbed): string {
  let d = digests.get(s);
  if (!d) digests.set(s, (d = sliceDigest(s.pixels, s.mask)));
  return d;
}

/**
 * Reads preprocessed slices, records each in `order`, answers those whose features are all cached
 * and yields the others for Embed.
 */
async function* slicesToEmbed(
  pre: PreprocessStream,
  plan: AnalysisPlan,
  needs: SliceNeeds,
  mask: StudyMask | undefined,
  modelSha: string,
  cache: EmbeddingCache,
  order: Entry[],
  byId: Map<number, Entry>,
  count: (hit: boolean) => void,
): AsyncGenerator<SliceToEmbed> {
  for await (const slice of pre.slices()) {
    const mapping = slice.mapping;
    const pixels = slice.pixels;
    if (!mapping || !pixels)
      throw new CuriaError('INTERNAL', 'preprocess sent a slice without mapping or pixels');
    const idx = mapping.canonicalIndex;
    const wanted = needs.outputs.get(idx);
    if (!wanted) continue;
    const emptyMask = mask?.needs.emptyMask.has(idx) === true;
    let maskTensor: common.Tensor | undefined;
    if (mask && plan.usesMask) {
      const { sampler } = mask;
      if (
        mapping.inputSliceIndex !== sampler.inputSliceIndex(idx) ||
        pixels.shape[1] !== sampler.height ||
        pixels.shape[2] !== sampler.width
      ) {
        throw new CuriaError('INTERNAL', `preprocess slice ${idx} disagrees with the announced geometry`);
      }
      maskTensor = emptyMask ? mask.placeholder : sampler.tensor(idx);
    }
    const item: SliceToEmbed = { id: idx, pixels, mask: maskTensor };
    const digest = cache.maxBytes > 0 ? digestOf(item) : '';
    const keys = wanted.map((o) => EmbeddingCache.key(modelSha, digest, plan.outputKeys[o]!));
    if (cache.maxBytes > 0 && cache.hasAll(keys)) {
      const features: (common.Tensor | undefined)[] = [];
      wanted.forEach((o, i) => (features[o] = cache.get(keys[i]!)));
      order.push({ mapping, features });
      count(true);
    } else {
      const entry: Entry = { mapping, features: null, emptyMask };
      order.push(entry);
      byId.set(idx, entry);
      count(false);
      yield item;
    }
  }
}

/** Calls Predict for every head concurrently and yields each result as soon as it is ready. */
async function* runHeads(
  plan: AnalysisPlan,
  needs: SliceNeeds,
  inputs: ReadonlyMap<number, (common.Tensor | undefined)[]>,
  s: gateway.AnalyzeStudyStart,
  modelRef: string,
  backends: Backends,
  signal: AbortSignal,
  deadline: Date,
): AsyncGenerator<Response> {
  const pending = new Map<number, Promise<{ i: number; res: heads.PredictResponse }>>();
  plan.heads.forEach((h, i) => {
    const slices: heads.SliceFeatures[] = needs.headSlices[i]!.map((idx) => ({
      sliceId: idx,
      features: h.outputIndex.map((o, requestIndex) => ({ requestIndex, tensor: inputs.get(idx)?.[o] })),
    }));
    const call = withSpan(
      'gateway.heads.predict',
      { 'curia.head': h.ref, 'curia.slices': slices.length },
      () =>
        backends.heads.predict(
          { head: h.ref, model: modelRef, slices, survivalTimes: s.survivalTimes },
          { signal, deadline },
        ),
    )
      .then((res) => ({ i, res }))
      .catch((err: unknown) => {
        throw stageError('heads', err, { signal });
      });
    call.catch(() => undefined); // observed by the race below; never an unhandled rejection
    pending.set(i, call);
  });
  while (pending.size > 0) {
    const { i, res } = await Promise.race(pending.values());
    pending.delete(i);
    yield {
      msg: {
        $case: 'headResult',
        value: {
          head: res.head ?? plan.heads[i]!.info,
          prediction: res.prediction,
          slices: s.returnSlicePredictions ? res.slices : [],
        },
      },
    };
  }
}
