import { CuriaError, isCuriaError } from '@curia/errors';
import {
  AsyncQueue,
  readStart,
  withSpan,
  type CuriaCallContext,
  type Logger,
  type MemoryBudget,
  studyRef,
} from '@curia/kit';
import { common, register } from '@curia/proto';
import {
  dicePerLabel,
  displacementOnGrid,
  IDENTITY,
  imageSimilarity,
  inputGrid,
  invertDisplacement,
  jacobianDeterminant,
  jacobianStats,
  registerVolumes,
  resampleLabels,
  resampleThroughField,
  resampleToGrid,
  volumeField,
  volumeLabels,
  voxelCount,
  warpLabels,
  workingGrid,
  type Grid,
  type GridField,
  type LabelField,
  type Registration,
  type RegistrationBackends,
  type SimilarityKind,
} from '@curia/register';
import type { StageClients } from '@curia/stages';

import type { RegisterEnv } from './config.js';
import { curiaTokenFields } from './curia-features.js';
import { readInputs, volumeGeometryOf, type OpenedInput, type RegisterInputs } from './inputs.js';
import type { RegisterMetrics } from './metrics.js';
import { modalityOf, planOf, type RegisterPlan } from './options.js';
import {
  affineInFrame,
  checkWholeGrid,
  displacementNifti,
  displacementSlabs,
  warpedNifti,
  warpedOutput,
  type FinalTransform,
} from './outputs.js';

type Response = register.RegisterResponse;

/** What a Register call needs from the service process. */
export interface RegisterDeps {
  readonly env: RegisterEnv;
  readonly stages: StageClients;
  readonly metrics: RegisterMetrics;
  readonly log: Logger;
  readonly onRetry: (stage: string) => void;
  /** The process's memory budget: every call holds its estimated peak from it while it runs. */
  readonly memory: MemoryBudget;
  /** Where the heavy steps run (chosen at warm-up; TypeScript until then). */
  backends: RegistrationBackends;
  /** Working spacing of requests that leave it unset, mm (3 on CPU, 2 on CUDA). */
  defaultWorkingSpacingMm: number;
}

const progress = (stage: string, done: number, total: number, message = ''): Response => ({
  msg: { $case: 'progress', value: { stage, done, total, message } },
});

const METRIC_ENUM: Record<SimilarityKind, register.SimilarityMetric> = {
  mse: register.SimilarityMetric.MSE,
  ncc: register.SimilarityMetric.NCC,
  mi: register.SimilarityMetric.MUTUAL_INFORMATION,
};

/** An input's intensities, refusing NaN or infinite voxels (INVALID_ARGUMENT naming the input). */
async function intensities(o: OpenedInput): Promise<GridField> {
  const f = await volumeField(o.volume);
  const bad = f.data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `inputs[${o.index}] '${o.input.inputId}' holds a NaN or infinite voxel (index ${bad}); registration needs finite intensities`,
    );
  }
  return f;
}

/**
 * Peak bytes a call holds: both images as F32 on their grids, features on the working grid (up to
 * 12 MIND + 12 Curia channels per image) and the cost volume of the deformable stage.
 */
export function estimatedCallBytes(
  inputs: RegisterInputs,
  workingVoxels: number,
  plan: RegisterPlan,
): number {
  const images =
    4 *
    (voxelCount(inputGrid(inputs.fixed.volume.geometry)) +
      voxelCount(inputGrid(inputs.moving.volume.geometry)));
  const channels = plan.features === 'hybrid' ? 24 : 12;
  const features = 4 * channels * workingVoxels * 3;
  const r = plan.deformable.searchRadius ?? 4;
  const cost = plan.transform === 'deformable' ? (4 * (2 * r + 1) ** 3 * workingVoxels) / 8 : 0;
  return images + features + cost;
}

/** Quality of T on the working grid: Jacobian of the total map, intensity similarity before and after. */
function qualityOf(
  reg: Registration,
  fixed: GridField,
  moving: GridField,
  metric: SimilarityKind,
): register.RegistrationQuality {
  const wg = reg.workingGrid;
  const det = jacobianDeterminant(displacementOnGrid(wg, reg.affine, reg.displacement));
  const all = jacobianStats(det);
  const unfolded = jacobianStats(
    det,
    Uint8Array.from(det, (d) => (d > 0 ? 1 : 0)),
  );
  const f = resampleToGrid(fixed, wg).data;
  const validBefore = new Uint8Array(voxelCount(wg));
  const validAfter = new Uint8Array(voxelCount(wg));
  const before = resampleToGrid(moving, wg, IDENTITY, 0, validBefore).data;
  const after = resampleThroughField(moving, wg, reg.affine, reg.displacement, 0, validAfter).data;
  const finite = (x: number): number => (Number.isFinite(x) ? x : 0);
  return {
    foldingFraction: all.foldingFraction,
    logJacobianStd: finite(unfolded.sdLogJ),
    jacobianMin: finite(all.minDet),
    jacobianMax: finite(all.maxDet),
    initialSimilarity: finite(imageSimilarity(f, before, metric, validBefore)),
    finalSimilarity: finite(imageSimilarity(f, after, metric, validAfter)),
    metric: METRIC_ENUM[metric],
    labelOverlaps: [],
  };
}

/**
 * Each moving label map decoded once and, when asked, warped onto the fixed grid once: the label
 * overlaps and the warped NIfTI output share both.
 */
class MovingLabels {
  private readonly decoded = new Map<string, Promise<LabelField>>();
  private readonly warped = new Map<string, Promise<LabelField>>();

  constructor(
    private readonly fixedGrid: Grid,
    private readonly t: FinalTransform,
  ) {}

  /** The label map on its own (moving) grid. */
  of(ml: OpenedInput): Promise<LabelField> {
    const id = ml.input.inputId;
    let p = this.decoded.get(id);
    if (!p) this.decoded.set(id, (p = volumeLabels(ml.volume)));
    return p;
  }

  /** The label map warped onto the whole fixed grid (nearest neighbour). */
  warpedOf(ml: OpenedInput): Promise<LabelField> {
    const id = ml.input.inputId;
    let p = this.warped.get(id);
    if (!p) {
      p = this.of(ml).then((m) => warpLabels(m, this.fixedGrid, this.t.affine, this.t.displacement));
      this.warped.set(id, p);
    }
    return p;
  }
}

/** Dice per label value of each fixed label map against the moving label maps of the same `label`. */
async function labelOverlaps(
  inputs: RegisterInputs,
  labels: MovingLabels,
  fixedGrid: Grid,
): Promise<register.LabelOverlap[]> {
  const out: register.LabelOverlap[] = [];
  for (const fl of inputs.fixedLabels) {
    const fixed = await volumeLabels(fl.volume);
    for (const ml of inputs.movingLabels.filter((m) => m.input.label === fl.input.label)) {
      const before = resampleLabels(await labels.of(ml), fixedGrid, IDENTITY, undefined, 0).data;
      const after = (await labels.warpedOf(ml)).data;
      const b = dicePerLabel(fixed.data, before);
      const a = dicePerLabel(fixed.data, after);
      for (const d of a) {
        if (d.voxelsA === 0) continue;
        out.push({
          label: fl.input.label,
          value: d.label,
          diceBefore: b.find((x) => x.label === d.label)?.dice ?? 0,
          diceAfter: d.dice,
          fixedVoxels: d.voxelsA,
        });
      }
    }
  }
  return out;
}

/** Runs `work`, yielding the progress events it queues while it runs, then its result. */
async function* withProgress<T>(
  work: (report: (stage: string, done: number, total: number) => void) => Promise<T>,
  result: { value?: T },
): AsyncGenerator<Response> {
  const events = new AsyncQueue<Response>();
  let last = 0;
  const report = (stage: string, done: number, total: number): void => {
    const now = performance.now();
    // At most ~10 events a second, plus every stage's end.
    if (done < total && now - last < 100) return;
    last = now;
    events.push(progress(stage, done, total));
  };
  const p = work(report).then(
    (v) => {
      result.value = v;
      events.close();
    },
    (e: unknown) => events.fail(e),
  );
  for await (const e of events) yield e;
  await p;
}

/**
 * One Register call: read and check every input, compute features (MIND here, Curia tokens through
 * Preprocess and Embed), register (affine search, then ConvexAdam when deformable), then stream the
 * transform, the requested fields and warped outputs on the fixed grid, and the quality summary.
 */
export async function* registerPair(
  requests: AsyncIterable<register.RegisterRequest>,
  context: CuriaCallContext & { signal: AbortSignal },
  deps: RegisterDeps,
): AsyncGenerator<Response> {
  const { env, metrics } = deps;
  const started = performance.now();
  const timings: common.Timing[] = [];
  let lapAt = started;
  const lap = (stage: string): void => {
    const now = performance.now();
    timings.push({ stage, millis: now - lapAt });
    metrics.stage.observe({ stage }, (now - lapAt) / 1000);
    lapAt = now;
  };
  const deadline = new Date(
    Math.min(context.deadline?.getTime() ?? Infinity, Date.now() + env.CURIA_REGISTER_DEFAULT_DEADLINE_MS),
  );
  const call = new AbortController();
  let expired = false;
  const onAbort = (): void => call.abort();
  context.signal.addEventListener('abort', onAbort);
  const timer = setTimeout(
    () => {
      expired = true;
      call.abort();
    },
    Math.max(0, deadline.getTime() - Date.now()),
  );
  const signal = call.signal;
  let releaseMemory: (() => void) | undefined;
  try {
    const { start, rest } = await readStart(requests, 'Register');
    const studyId = start.inputs.find((i) => i.role === register.InputRole.FIXED)?.header?.studyId ?? '';
    // Options first: a contradictory request fails before any byte is read.
    planOf(start.options, true, deps.defaultWorkingSpacingMm);
    yield progress('read', 0, 1);
    const inputs = await withSpan('register.read_inputs', { 'curia.study': studyRef(studyId) }, () =>
      readInputs(
        start,
        rest,
        {
          maxUploadBytes: env.CURIA_REGISTER_MAX_UPLOAD_BYTES,
          maxFiles: env.CURIA_REGISTER_MAX_UPLOAD_FILES,
          maxVoxelBytes: env.CURIA_REGISTER_MAX_VOXEL_BYTES,
          allowedRoots: env.CURIA_REGISTER_ALLOWED_ROOTS,
        },
        signal,
        start.options?.features === register.FeatureSet.CURIA ||
          start.options?.features === register.FeatureSet.HYBRID,
      ),
    );
    lap('read');
    const fixedModality = modalityOf(
      inputs.fixed.input.modality,
      inputs.fixed.volume,
      `inputs[${inputs.fixed.index}].modality`,
    );
    const movingModality = modalityOf(
      inputs.moving.input.modality,
      inputs.moving.volume,
      `inputs[${inputs.moving.index}].modality`,
    );
    const plan = planOf(start.options, fixedModality === movingModality, deps.defaultWorkingSpacingMm);
    yield {
      msg: {
        $case: 'geometry',
        value: {
          fixed: volumeGeometryOf(inputs.fixed.volume),
          moving: volumeGeometryOf(inputs.moving.volume),
        },
      },
    };

    const fixedGrid = inputGrid(inputs.fixed.volume.geometry);
    const wgVoxels = voxelCount(workingGrid(inputs.fixed.volume.geometry, plan.workingSpacingMm));
    const need = estimatedCallBytes(inputs, wgVoxels, plan);
    if (need > env.CURIA_REGISTER_MAX_CALL_BYTES) {
      throw new CuriaError(
        'RESOURCE_EXHAUSTED',
        `this registration needs about ${Math.ceil(need / 2 ** 20)} MiB (working grid of ${wgVoxels} voxels at ${plan.workingSpacingMm} mm), above CURIA_REGISTER_MAX_CALL_BYTES (${Math.floor(env.CURIA_REGISTER_MAX_CALL_BYTES / 2 ** 20)} MiB); use a coarser working_spacing_mm or smaller volumes`,
      );
    }
    releaseMemory = await deps.memory.acquire(need, {
      what: `this registration (working grid of ${wgVoxels} voxels at ${plan.workingSpacingMm} mm)`,
      signal,
    });
    if (plan.outputs.displacement && plan.outputs.displacementFormat === 'nifti') {
      checkWholeGrid(fixedGrid, 24, env.CURIA_REGISTER_MAX_OUTPUT_BYTES, 'the displacement NIfTI');
    }
    if ((plan.outputs.warpedImage || inputs.movingLabels.length) && plan.outputs.warpedFormat === 'nifti') {
      checkWholeGrid(fixedGrid, 8, env.CURIA_REGISTER_MAX_OUTPUT_BYTES, 'a warped NIfTI');
    }

    const fixed = await intensities(inputs.fixed);
    const moving = await intensities(inputs.moving);

    let tokens: Awaited<ReturnType<typeof curiaTokenFields>> | undefined;
    if (plan.features !== 'mind') {
      yield progress('curia-features', 0, 1);
      tokens = await withSpan('register.curia_features', { 'curia.study': studyRef(studyId) }, () =>
        curiaTokenFields(deps, {
          backbone: plan.backbone,
          fixed: inputs.fixed,
          moving: inputs.moving,
          studyId,
          signal,
          deadline,
        }),
      );
      metrics.slicesEmbedded.inc(tokens.slicesEmbedded);
      lap('curia_features');
    }

    const fixedMask = inputs.fixedMask ? await volumeLabels(inputs.fixedMask.volume) : undefined;
    const box: { value?: Registration } = {};
    yield* withProgress(
      (report) =>
        withSpan(
          'register.optimise',
          { 'curia.study': studyRef(studyId), 'curia.register.features': plan.features },
          () =>
            registerVolumes(
              { image: fixed, modality: fixedModality, tokens: tokens?.fixed },
              { image: moving, modality: movingModality, tokens: tokens?.moving },
              {
                transform: plan.transform,
                features: plan.features,
                workingSpacingMm: plan.workingSpacingMm,
                fixedMask,
                deformable: plan.deformable,
                backends: deps.backends,
                signal,
                onProgress: report,
              },
            ),
        ),
      box,
    );
    const reg = box.value!;
    for (const t of reg.timings) {
      timings.push({ stage: t.stage, millis: t.ms });
      metrics.stage.observe({ stage: t.stage }, t.ms / 1000);
    }
    lapAt = performance.now();
    yield {
      msg: {
        $case: 'transform',
        value: {
          fixedToMoving: {
            m: affineInFrame(reg.affine, plan.frame),
            frame: plan.frame === 'RAS' ? common.CoordinateFrame.RAS : common.CoordinateFrame.LPS,
          },
        },
      },
    };

    const t: FinalTransform = {
      affine: reg.affine,
      displacement: reg.displacement,
      inverse:
        plan.outputs.inverse && reg.displacement ? invertDisplacement(reg.displacement).field : undefined,
    };
    const quality = qualityOf(reg, fixed, moving, plan.metric);
    const movingLabels = new MovingLabels(fixedGrid, t);
    quality.labelOverlaps = await labelOverlaps(inputs, movingLabels, fixedGrid);
    lap('quality');

    const o = plan.outputs;
    for (const inverse of [false, true]) {
      if (!(inverse ? o.inverse : o.displacement)) continue;
      if (o.displacementFormat === 'nifti') yield* displacementNifti(fixedGrid, t, inverse);
      else yield* displacementSlabs(fixedGrid, t, { inverse, frame: plan.frame, dtype: o.displacementDType });
      if (signal.aborted) throw new CuriaError('CANCELLED', 'Register was cancelled');
    }
    if (o.warpedImage) yield* warpedOutput(inputs.moving.input.inputId, moving, fixedGrid, t, o.warpedFormat);
    for (const l of inputs.movingLabels) {
      yield* o.warpedFormat === 'nifti'
        ? warpedNifti(l.input.inputId, await movingLabels.warpedOf(l))
        : warpedOutput(l.input.inputId, await movingLabels.of(l), fixedGrid, t, o.warpedFormat);
      if (signal.aborted) throw new CuriaError('CANCELLED', 'Register was cancelled');
    }
    lap('outputs');
    timings.push({ stage: 'total', millis: performance.now() - started });
    metrics.stage.observe({ stage: 'total' }, (performance.now() - started) / 1000);
    metrics.foldingFraction.observe(quality.foldingFraction);
    deps.log.info(
      {
        study: studyRef(studyId),
        features: plan.features,
        transform: plan.transform,
        ms: Math.round(performance.now() - started),
        folding: quality.foldingFraction,
      },
      'registration done',
    );
    yield { msg: { $case: 'done', value: { quality, timings, ...(tokens ? { model: tokens.model } : {}) } } };
  } catch (e) {
    if (expired && (!isCuriaError(e) || e.code === 'CANCELLED')) {
      throw new CuriaError(
        'DEADLINE_EXCEEDED',
        `Register did not finish within its deadline (${Math.round(performance.now() - started)} ms); set a longer deadline or a coarser working_spacing_mm`,
        { cause: e },
      );
    }
    throw e;
  } finally {
    releaseMemory?.();
    clearTimeout(timer);
    context.signal.removeEventListener('abort', onAbort);
  }
}
