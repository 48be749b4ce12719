import { checkHeadModel } from '@curia/client';
import { CuriaError } from '@curia/errors';
import {
  checkStudyId,
  readStart,
  withSpan,
  type CuriaCallContext,
  type MemoryBudget,
  studyRef,
  noteAuditTarget,
} from '@curia/kit';
import type { common, gateway, heads, segment } from '@curia/proto';
import {
  embedStudy,
  openPreprocess,
  stageDeadlines,
  stageError,
  uploadedChunks,
  type EmbeddingCache,
  type PreprocessStream,
  type SliceRequest,
  type StageClients,
  type StageDeadlines,
} from '@curia/stages';
import type { Logger } from 'pino';

import type { GatewayEnv } from './config.js';
import { CanonicalMaskSampler, wholeImageMask } from './mask/canonical-mask.js';
import { restrictToMask, type MaskedNeeds } from './mask/coverage.js';
import { checkMaskGrid, decodeInputMask, type InputGridMask } from './mask/input-mask.js';
import type { GatewayMetrics } from './metrics.js';
import { SegmentationRelay } from './segmentation.js';
import { planAnalysis, preprocessSelection, sliceNeeds, type AnalysisPlan, type SliceNeeds } from './plan.js';

/** Most segmentation heads one AnalyzeStudy may name (the contract's limit). */
const MAX_SEGMENTATION_HEADS = 8;

/** What one AnalyzeStudy call needs from the gateway process. */
export interface AnalyzeDeps {
  readonly env: GatewayEnv;
  readonly stages: StageClients;
  readonly cache: EmbeddingCache;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  /** The process's memory budget: a study's decoded mask is taken from it. None: no budget. */
  readonly memory?: MemoryBudget;
}

type Response = gateway.AnalyzeStudyResponse;
type Requests = AsyncIterator<gateway.AnalyzeStudyRequest>;

const progress = (stage: string, done: number, total: number, message = ''): Response => ({
  msg: { $case: 'progress', value: { stage, done, total, message } },
});

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
  const { start, rest } = await readStart(requests, 'AnalyzeStudy');
  const run = new StudyRun(start, rest, context, deps);
  try {
    yield* run.execute();
  } finally {
    run.close();
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

/** What the validation step settled before any stage work. */
interface Settled {
  readonly model: common.ModelInfo;
  readonly plan: AnalysisPlan;
  readonly deadlines: StageDeadlines;
  /** Segmentation heads (`name@version`) and whether any is demo. */
  readonly segmentation: readonly segment.SegmentHead[];
}

/**
 * One study on its way through the stages, one method per stage. It owns the study's abort
 * signal (the caller's cancellation, or our own failure) which every stage call carries.
 */
class StudyRun {
  private readonly t0 = performance.now();
  private readonly study = new AbortController();
  private readonly timings: common.Timing[] = [];
  private readonly studyId: string;
  private readonly onCallerAbort = (): void => this.study.abort();
  private hits = 0;
  private misses = 0;
  /** Gives back the memory budget the study's mask holds. */
  private releaseMask: (() => void) | undefined;

  constructor(
    private readonly start: gateway.AnalyzeStudyStart,
    private readonly input: Requests,
    private readonly context: CuriaCallContext & { signal: AbortSignal },
    private readonly deps: AnalyzeDeps,
  ) {
    this.studyId = start.header?.studyId ?? '';
    context.signal.addEventListener('abort', this.onCallerAbort);
  }

  private get signal(): AbortSignal {
    return this.study.signal;
  }

  /** Runs every stage, yielding the response stream. */
  async *execute(): AsyncGenerator<Response> {
    checkStudyId(this.studyId);
    if (!this.start.source)
      throw new CuriaError('INVALID_ARGUMENT', 'start.source is required (ref or streamed)');
    const inputMask = await this.decodeMask();
    const settled = await this.validate(inputMask !== undefined);
    const { model, plan } = settled;
    const pre = await this.openPreprocess(settled);
    const mask = inputMask ? this.maskForStudy(inputMask, pre, plan) : undefined;
    const needs = mask?.needs ?? sliceNeeds(plan, pre.geometry.numCanonicalSlices);
    yield {
      msg: {
        $case: 'geometry',
        value: {
          geometry: pre.geometry.geometry,
          numCanonicalSlices: pre.geometry.numCanonicalSlices,
          model,
          heads: plan.heads.map((h) => h.info),
        },
      },
    };
    const headInputs = new Map<number, (common.Tensor | undefined)[]>();
    const embedded = yield* this.embed(pre, settled, needs, mask, headInputs);
    yield* this.predict(settled, needs, headInputs);
    this.timed('total', performance.now() - this.t0);
    this.deps.log.info(
      { study: studyRef(this.studyId), slices: embedded, hits: this.hits, misses: this.misses },
      'analysis done',
    );
    yield {
      msg: {
        $case: 'done',
        value: {
          timings: this.timings,
          cache: { hits: this.hits, misses: this.misses },
          model,
          demoWeights:
            model.demoWeights ||
            plan.heads.some((h) => h.info.demo) ||
            settled.segmentation.some((h) => h.info?.demo),
          slicesEmbedded: embedded,
        },
      },
    };
  }

  /** Stops every stage call still running. */
  close(): void {
    this.releaseMask?.();
    this.context.signal.removeEventListener('abort', this.onCallerAbort);
    this.study.abort();
  }

  private timed(stage: string, ms: number): void {
    this.timings.push({ stage, millis: ms });
    this.deps.metrics.stage.observe({ stage }, ms / 1000);
  }

  /** Decodes `start.mask` once per study, before any stage call, so a malformed mask costs no backend work. */
  private async decodeMask(): Promise<InputGridMask | undefined> {
    if (!this.start.mask) return undefined;
    const t = performance.now();
    const memory = this.deps.memory;
    const mask = await decodeInputMask(
      this.start.mask,
      {
        maxVoxels: this.deps.env.CURIA_GATEWAY_MAX_MASK_VOXELS,
        ...(memory
          ? { reserve: (bytes: number, what: string) => memory.acquire(bytes, { what, signal: this.signal }) }
          : {}),
      },
      this.context.signal,
    );
    this.releaseMask = mask.release;
    this.timed('mask', performance.now() - t);
    return mask;
  }

  /**
   * Resolves the model and every head, checks each head against the model, and plans the
   * outputs: a typo or a mismatch fails here, in milliseconds, before any stage work.
   */
  private async validate(hasMask: boolean): Promise<Settled> {
    const s = this.start;
    const now = Date.now();
    const deadline = new Date(
      Math.min(
        this.context.deadline?.getTime() ?? Infinity,
        now + this.deps.env.CURIA_GATEWAY_DEFAULT_DEADLINE_MS,
      ),
    );
    const deadlines = stageDeadlines(deadline, now, s.heads.length > 0);
    if (s.segmentationHeads.length > MAX_SEGMENTATION_HEADS) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `segmentation_heads names ${s.segmentationHeads.length} heads; at most ${MAX_SEGMENTATION_HEADS} per study`,
      );
    }
    if (s.segmentationOutput?.dicomSeg) {
      throw new CuriaError(
        'FAILED_PRECONDITION',
        'segmentation_output.dicom_seg is not available through the gateway: call SegmentService.Segment',
      );
    }
    const [model, headInfos, segHeads] = await Promise.all([
      this.deps.stages.resolveModel(s.model, this.signal, 'model'),
      this.deps.stages.resolveHeads(s.heads, this.signal),
      this.deps.stages.resolveSegmentHeads(s.segmentationHeads, this.signal, 'segmentation_heads'),
    ]);
    const modelRef = `${model.name}@${model.version}`;
    for (const h of headInfos) checkHeadModel(`${h.name}@${h.version}`, h.model, modelRef);
    for (const ref of [modelRef, ...headInfos.map((h) => `${h.name}@${h.version}`)])
      noteAuditTarget(this.context, ref);
    for (const h of segHeads) {
      const ref = `${h.info!.name}@${h.info!.version}`;
      if (!h.promptless) {
        throw new CuriaError(
          'FAILED_PRECONDITION',
          `segmentation_heads: '${ref}' needs prompts: call SegmentService.Segment with points`,
        );
      }
      checkHeadModel(ref, h.info!.model, modelRef);
    }
    const plan = planAnalysis(
      {
        embeddingOutputs: s.embeddingOutputs,
        embeddingSelection: s.embeddingSelection,
        hasMask,
        segmentation: segHeads.length > 0,
      },
      headInfos,
    );
    if (plan.outputs.length === 0) {
      throw new CuriaError('INVALID_ARGUMENT', 'nothing to compute: name heads and/or embedding_outputs');
    }
    return { model, plan, deadlines, segmentation: segHeads };
  }

  /** Opens the Preprocess call (forwarding an upload) and waits for the study's geometry. */
  private async openPreprocess({ model, plan, deadlines }: Settled): Promise<PreprocessStream> {
    const s = this.start;
    const { env, stages, metrics, log } = this.deps;
    const modelRef = `${model.name}@${model.version}`;
    const bundle =
      s.preprocess?.modelBundle || ((await stages.preprocessKnows(modelRef, this.signal)) ? modelRef : '');
    const options: common.PreprocessOptions = {
      modelBundle: bundle,
      clipBelowAir: s.preprocess?.clipBelowAir,
      outputDtype: s.preprocess?.outputDtype ?? 0,
      selection: preprocessSelection(plan),
    };
    log.info(
      { study: studyRef(this.studyId), heads: s.heads.length, outputs: plan.outputs.length },
      'analysis started',
    );
    return withSpan('gateway.preprocess.open', { 'curia.study': studyRef(this.studyId) }, () =>
      openPreprocess(stages.preprocess, {
        start: { header: s.header, source: s.source, options },
        upload: s.source?.$case === 'streamed' ? uploadedChunks(this.input, 'AnalyzeStudy') : undefined,
        maxUploadBytes: env.CURIA_GATEWAY_MAX_UPLOAD_BYTES,
        uploadLimitName: 'CURIA_GATEWAY_MAX_UPLOAD_BYTES',
        attempts: env.CURIA_GATEWAY_STAGE_ATTEMPTS,
        signal: this.signal,
        deadline: deadlines.pipeline,
        onRetry: () => metrics.retries.inc({ stage: 'preprocess' }),
        onUploadDone: (ms) => this.timed('upload', ms),
      }),
    );
  }

  /**
   * Checks the decoded mask against the study's input grid, and restricts the mask's consumers to
   * slices where the resized mask is non-empty.
   */
  private maskForStudy(mask: InputGridMask, pre: PreprocessStream, plan: AnalysisPlan): StudyMask {
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
    this.deps.log.info(
      { study: studyRef(this.studyId), mask_voxels: mask.inside, empty_mask_slices: needs.emptyMask.size },
      'mask decoded',
    );
    return { sampler, needs, placeholder: wholeImageMask(height, width) };
  }

  /**
   * Streams the preprocessed slices through the cache or Embed, yields the requested embeddings
   * in canonical order, and keeps each head's inputs in `headInputs`. Returns the slice count.
   */
  private async *embed(
    pre: PreprocessStream,
    { model, plan, deadlines, segmentation }: Settled,
    needs: SliceNeeds,
    mask: StudyMask | undefined,
    headInputs: Map<number, (common.Tensor | undefined)[]>,
  ): AsyncGenerator<Response, number> {
    const { env, stages, cache, metrics } = this.deps;
    const t = performance.now();
    const headSlices = new Set(needs.headSlices.flat());
    const select = (slice: {
      mapping?: common.SliceMapping;
      pixels?: common.Tensor;
    }): SliceRequest | undefined => {
      const idx = slice.mapping!.canonicalIndex;
      const outputs = needs.outputs.get(idx);
      if (!outputs) return undefined;
      if (!mask || !plan.usesMask) return { outputs };
      const { sampler } = mask;
      if (
        slice.mapping!.inputSliceIndex !== sampler.inputSliceIndex(idx) ||
        slice.pixels!.shape[1] !== sampler.height ||
        slice.pixels!.shape[2] !== sampler.width
      ) {
        throw new CuriaError('INTERNAL', `preprocess slice ${idx} disagrees with the announced geometry`);
      }
      const empty = mask.needs.emptyMask.has(idx);
      return empty
        ? { outputs, mask: mask.placeholder, discard: mask.needs.maskOutputs }
        : { outputs, mask: sampler.tensor(idx) };
    };
    const total = pre.geometry.selectedCount;
    const relay =
      plan.segmentationIndex === undefined
        ? undefined
        : new SegmentationRelay(
            stages.segment,
            segmentation.map((h, i) => ({
              named: this.start.segmentationHeads[i]!,
              ref: `${h.info!.name}@${h.info!.version}`,
            })),
            {
              header: this.start.header,
              model: `${model.name}@${model.version}`,
              geometry: pre.geometry.geometry,
              classNames: [],
              output: this.start.segmentationOutput,
            },
            { signal: this.signal, deadline: deadlines.pipeline },
          );
    let count = 0;
    let lastProgress = 0;
    for await (const e of embedStudy(pre.slices(), {
      client: stages.embed,
      model,
      outputs: plan.outputs,
      studyId: this.studyId,
      select,
      cache,
      window: env.CURIA_GATEWAY_EMBED_WINDOW,
      attempts: env.CURIA_GATEWAY_STAGE_ATTEMPTS,
      signal: this.signal,
      deadline: deadlines.pipeline,
      onRetry: () => metrics.retries.inc({ stage: 'embed' }),
    })) {
      count++;
      if (e.cached) this.hits++;
      else this.misses++;
      const idx = e.mapping.canonicalIndex;
      if (needs.embeddingSlices.has(idx)) {
        yield {
          msg: {
            $case: 'embedding',
            value: {
              mapping: e.mapping,
              features: plan.embeddingIndex.map((o, requestIndex) => ({
                requestIndex,
                tensor: e.features[o],
              })),
            },
          },
        };
      }
      if (headSlices.has(idx)) headInputs.set(idx, [...e.features]);
      if (relay) {
        const tokens = e.features[plan.segmentationIndex!];
        if (!tokens) throw new CuriaError('INTERNAL', `embed returned no patch tokens for slice ${idx}`);
        await relay.send(e.mapping, tokens);
        yield* relay.ready();
      }
      const now = performance.now();
      if (now - lastProgress > 200) {
        lastProgress = now;
        yield progress('embed', count, total);
      }
    }
    if (relay) yield* relay.finish();
    metrics.cacheHits.inc(this.hits);
    metrics.cacheMisses.inc(this.misses);
    this.timed('preprocess', pre.elapsedMs());
    this.timed('embed', performance.now() - t);
    yield progress('embed', count, total, `${this.misses} embedded, ${this.hits} from cache`);
    return count;
  }

  /** Calls Predict for every head concurrently and yields each result as soon as it is ready. */
  private async *predict(
    { model, plan, deadlines }: Settled,
    needs: SliceNeeds,
    inputs: ReadonlyMap<number, (common.Tensor | undefined)[]>,
  ): AsyncGenerator<Response> {
    if (plan.heads.length === 0) return;
    const t = performance.now();
    const s = this.start;
    const modelRef = `${model.name}@${model.version}`;
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
          this.deps.stages.heads.predict(
            { head: h.ref, model: modelRef, slices, survivalTimes: s.survivalTimes },
            { signal: this.signal, deadline: deadlines.heads },
          ),
      )
        .then((res) => ({ i, res }))
        .catch((err: unknown) => {
          throw stageError('heads', err, { signal: this.signal });
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
    this.timed('heads', performance.now() - t);
  }
}
