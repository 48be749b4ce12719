import { checkHeadModel } from '@curia/client';
import { CuriaError } from '@curia/errors';
import {
  checkStudyId,
  readStart,
  withSpan,
  type CuriaCallContext,
  type Logger,
  type MemoryBudget,
  fileChunks,
  studyRef,
  noteAuditTarget,
} from '@curia/kit';
import { common, segment } from '@curia/proto';
import {
  ClassTable,
  dicomSegOf,
  evaluateAgainst,
  inputToCanonical,
  inputVoxelsOf,
  naturalizedHeader,
  openLabelMap,
  segmentByClicks,
  tokenGridSize,
  VolumeSegmentation,
  worldToInput,
  type CanonicalBox,
  type CanonicalPoint,
  type ClassAgreement,
  type ModelGrid,
  type SegClass,
  type StudyGrid,
} from '@curia/segment';
import { stageDeadlines, uploadedChunks, type StageDeadlines } from '@curia/stages';

import type { ResolvedHead, SegmentHeads } from './heads.js';
import type { SegmentMetrics } from './metrics.js';
import { classResults, evaluationOf, geometryMessage } from './responses.js';
import { fittedSegmentation, niftiOut, slicesOut } from './run.js';
import { modelGridOf, preprocessStudy, studyGridOf, tokenValues, tokensOf, type StudyDeps } from './study.js';

type Response = segment.SegmentResponse;

/** What a Segment call needs from the service process. */
export interface SegmentDeps extends StudyDeps {
  readonly heads: SegmentHeads;
  readonly metrics: SegmentMetrics;
  readonly log: Logger;
  /** The process's memory budget: a Fit's label maps are taken from it. None: no budget. */
  readonly memory?: MemoryBudget;
}

const progress = (stage: string, done: number, total: number, message = ''): Response => ({
  msg: { $case: 'progress', value: { stage, done, total, message } },
});

/** The study deadline: the caller's, or the default when it sets none. */
export function studyDeadlines(context: CuriaCallContext, defaultMs: number): StageDeadlines {
  const now = Date.now();
  const deadline = new Date(Math.min(context.deadline?.getTime() ?? Infinity, now + defaultMs));
  return stageDeadlines(deadline, now, false);
}

/** Checks a request's head choice against its prompts and options, before any stage work. */
function checkPrompts(s: segment.SegmentStart, head: ResolvedHead): void {
  const ref = `${head.wire.info!.name}@${head.wire.info!.version}`;
  if (s.inputMask) {
    throw new CuriaError('FAILED_PRECONDITION', `input_mask: head '${ref}' does not refine an initial mask`);
  }
  if (head.kind === 'click') {
    if (s.points.length === 0) {
      throw new CuriaError(
        'FAILED_PRECONDITION',
        `head '${ref}' segments from point prompts: send at least one positive point (or name a promptless head in model)`,
      );
    }
    if (s.classNames.length > 0) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `class_names: head '${ref}' has no fixed classes (objects are the point labels)`,
      );
    }
    return;
  }
  if (s.points.length > 0) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `points: head '${ref}' is promptless and does not accept point prompts (it accepts boxes as a restriction); use head 'click' for clicks`,
    );
  }
  if (s.propagation === segment.Propagation.VOLUME_3D) {
    throw new CuriaError(
      'UNIMPLEMENTED',
      `propagation: head '${ref}' segments each slice (optionally smoothed across slices: smooth_across_slices); VOLUME_3D is for the prompt head`,
    );
  }
  const known = new Set(head.wire.classes.map((c) => c.label));
  s.classNames.forEach((n, i) => {
    if (!known.has(n)) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `class_names[${i}] '${n}' is not a class of head '${ref}' (classes: ${[...known].join(', ')})`,
      );
    }
  });
}

const frameOf = (f: common.CoordinateFrame, field: string): 'RAS' | 'LPS' => {
  if (f === common.CoordinateFrame.RAS) return 'RAS';
  if (f === common.CoordinateFrame.LPS) return 'LPS';
  throw new CuriaError('INVALID_ARGUMENT', `${field}: a PATIENT_MM prompt needs frame RAS or LPS`);
};

/** A prompt position as a canonical position, checked to lie inside the volume (never echoed). */
function canonicalOf(
  grid: StudyGrid,
  xyz: readonly number[],
  space: segment.CoordinateSpace,
  frame: common.CoordinateFrame,
  field: string,
): { slice: number; row: number; col: number } {
  if (xyz.length !== 3 || !xyz.every(Number.isFinite)) {
    throw new CuriaError('INVALID_ARGUMENT', `${field} must hold exactly 3 finite coordinates`);
  }
  const v = xyz as unknown as [number, number, number];
  let voxel: [number, number, number];
  if (space === segment.CoordinateSpace.INPUT_VOXEL) voxel = [...v];
  else if (space === segment.CoordinateSpace.PATIENT_MM) {
    const w = worldToInput(grid, v, frameOf(frame, field));
    if (!w) throw new CuriaError('INVALID_ARGUMENT', `${field}: the study's affine cannot be inverted`);
    voxel = w;
  } else {
    throw new CuriaError('INVALID_ARGUMENT', `${field}: space must be INPUT_VOXEL or PATIENT_MM`);
  }
  if (voxel.some((x, a) => x < -0.5 || x > grid.inputDims[a]! - 0.5)) {
    throw new CuriaError('INVALID_ARGUMENT', `${field} lies outside the volume`);
  }
  return inputToCanonical(grid, voxel);
}

/** The objects of a click request: one class per distinct point label, in order of appearance. */
function clickObjects(s: segment.SegmentStart): SegClass[] {
  const names: string[] = [];
  for (const p of s.points) {
    const n = p.label || 'object';
    if (!names.includes(n)) names.push(n);
  }
  for (const b of s.boxes) {
    const n = b.label || 'object';
    if (!names.includes(n))
      throw new CuriaError('INVALID_ARGUMENT', `boxes: label '${n}' has no point prompt`);
  }
  if (names.length > 255) throw new CuriaError('INVALID_ARGUMENT', 'points: at most 255 distinct labels');
  return names.map((name, i) => ({ value: i + 1, name }));
}

/**
 * Segment: resolves and checks the head first (so a wrong prompt fails in milliseconds), then
 * streams the study through Preprocess → (token cache | Embed) → the head, and answers with the
 * geometry, optional per-slice masks, the NIfTI label map on the input grid and a summary.
 */
export async function* segmentStudy(
  requests: AsyncIterable<segment.SegmentRequest>,
  context: CuriaCallContext & { signal: AbortSignal },
  deps: SegmentDeps,
): AsyncGenerator<Response> {
  const t0 = performance.now();
  const { start: s, rest: input } = await readStart(requests, 'Segment');
  const studyId = s.header?.studyId ?? '';
  checkStudyId(studyId);
  if (!s.source) throw new CuriaError('INVALID_ARGUMENT', 'start.source is required (ref or streamed)');
  const output = s.output ?? { sliceMasks: false, omitNiftiMask: false, gzip: false, dicomSeg: false };
  if (output.dicomSeg && s.source.$case !== 'streamed') {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      "output.dicom_seg needs the DICOM series uploaded (source `streamed`): the SEG copies the source instances' references",
    );
  }
  const head = deps.heads.resolve(s.model || (s.points.length > 0 ? 'click' : ''), 'model');
  checkPrompts(s, head);
  const study = new AbortController();
  const onAbort = (): void => study.abort();
  context.signal.addEventListener('abort', onAbort);
  const signal = study.signal;
  const timings: common.Timing[] = [];
  const timed = (stage: string, ms: number): void => {
    timings.push({ stage, millis: ms });
    deps.metrics.stage.observe({ stage }, ms / 1000);
  };
  try {
    const deadlines = studyDeadlines(context, deps.env.CURIA_SEGMENT_DEFAULT_DEADLINE_MS);
    const model = await backboneOf(s, head, deps, signal);
    const modelRef = `${model.name}@${model.version}`;
    noteAuditTarget(context, `${head.wire.info!.name}@${head.wire.info!.version}`);
    const preprocessOptions: common.PreprocessOptions = {
      modelBundle: (await deps.stages.preprocessKnows(modelRef, signal)) ? modelRef : '',
      outputDtype: common.DType.F32,
      selection: { selection: { $case: 'all', value: {} } },
    };
    deps.log.info(
      { study: studyRef(studyId), head: `${head.wire.info!.name}@${head.wire.info!.version}` },
      'segmentation started',
    );
    // The uploaded files, kept only for DICOM SEG output (it copies the source instances' headers).
    const uploaded = output.dicomSeg ? new Map<string, Uint8Array[]>() : undefined;
    const pre = await withSpan('segment.preprocess.open', { 'curia.study': studyRef(studyId) }, () =>
      preprocessStudy(deps, {
        start: { header: s.header, source: s.source, options: preprocessOptions },
        upload:
          s.source?.$case === 'streamed' ? keepFiles(uploadedChunks(input, 'Segment'), uploaded) : undefined,
        signal,
        deadline: deadlines.pipeline,
      }),
    );
    const grid = studyGridOf(pre.geometry.geometry);
    const modelGrid = modelGridOf(model);
    const reference = s.referenceLabels?.encoding
      ? await openLabelMap(s.referenceLabels.encoding.value, grid, 'reference_labels', signal)
      : undefined;
    const objects = head.kind === 'click' ? clickObjects(s) : undefined;
    const table = new ClassTable(
      objects ?? head.wire.classes.map((c) => ({ value: c.value, name: c.label })),
      head.kind === 'click' ? 'points' : 'head classes',
    );
    const prompts = head.kind === 'click' ? promptsOf(s, grid, objects!) : undefined;
    yield geometryMessage(pre.geometry.geometry!, table);

    const keep =
      s.classNames.length > 0
        ? new Set([0, ...s.classNames.map((n) => table.classes.findIndex((c) => c.name === n) + 1)])
        : undefined;
    const smooth = s.smoothAcrossSlices ?? head.wire.smoothAcrossSlices;
    const tEmbed = performance.now();
    let embedded = 0;
    let fromCache = 0;
    let seg: VolumeSegmentation;
    const total = pre.geometry.selectedCount;
    const tokens = tokensOf(deps, pre, { model, studyId, signal, deadline: deadlines.pipeline });
    if (head.kind === 'fitted') {
      const runner = await deps.heads.runner(head.stored);
      seg = fittedSegmentation(runner, { grid, model: modelGrid, table, keep, smooth });
      const dim = head.stored.item.weights.dim;
      for await (const t of tokens) {
        if (t.cached) fromCache++;
        else embedded++;
        const values = tokenValues(t.tensor, modelGrid, dim, 'embed patch tokens');
        yield* slicesOut(await seg.add(t.mapping.canonicalIndex, values), seg, grid, table, output);
        if ((embedded + fromCache) % 16 === 0) yield progress('embed', embedded + fromCache, total);
      }
      yield* slicesOut(await seg.finish(), seg, grid, table, output);
    } else {
      const held = new Map<number, common.Tensor>();
      for await (const t of tokens) {
        if (t.cached) fromCache++;
        else embedded++;
        if (held.size >= deps.env.CURIA_SEGMENT_MAX_PROMPT_SLICES) {
          throw new CuriaError(
            'RESOURCE_EXHAUSTED',
            `the study has more than ${deps.env.CURIA_SEGMENT_MAX_PROMPT_SLICES} slices (CURIA_SEGMENT_MAX_PROMPT_SLICES) for prompt segmentation`,
          );
        }
        held.set(t.mapping.canonicalIndex, t.tensor);
        if ((embedded + fromCache) % 16 === 0) yield progress('embed', embedded + fromCache, total);
      }
      const dim = Number(model.architecture?.hiddenSize ?? 0);
      seg = new VolumeSegmentation(
        () => Promise.reject(new CuriaError('INTERNAL', 'prompt scores are added directly')),
        {
          grid,
          model: modelGrid,
          table,
          smooth: false,
          scoreKind: 'probabilities',
        },
      );
      const tClick = performance.now();
      const scores = clickScores(
        prompts!,
        table,
        grid,
        modelGrid,
        dim,
        (k) => {
          const t = held.get(k);
          if (!t) throw new CuriaError('INTERNAL', `slice ${k} was not embedded`);
          return tokenValues(t, modelGrid, dim, 'embed patch tokens');
        },
        s.propagation !== segment.Propagation.PER_SLICE,
      );
      timed('prompt', performance.now() - tClick);
      for (let k = 0; k < grid.canonicalDims[0]; k++)
        yield* slicesOut(await seg.addScores(k, scores(k)), seg, grid, table, output);
      yield* slicesOut(await seg.finish(), seg, grid, table, output);
    }
    timed('preprocess', pre.elapsedMs());
    timed('embed_and_head', performance.now() - tEmbed);
    deps.metrics.cacheHits.inc(fromCache);
    deps.metrics.cacheMisses.inc(embedded);

    yield* niftiOut(seg, output, timed);
    if (uploaded) {
      const t = performance.now();
      const file = dicomSegFile(uploaded, seg.labels.voxels, grid, table, {
        demo: model.demoWeights || head.wire.info!.demo,
        head: `${head.wire.info!.name}@${head.wire.info!.version}`,
      });
      timed('dicom_seg', performance.now() - t);
      yield* fileChunks(file, 'seg.dcm', (c) => ({ msg: { $case: 'dicomSegChunk', value: c } }));
    }
    let agreement: ClassAgreement[] = [];
    if (reference) {
      const t = performance.now();
      agreement = evaluateAgainst(seg.labels.voxels, await inputVoxelsOf(reference, grid), table, grid);
      timed('evaluate', performance.now() - t);
    }
    timed('total', performance.now() - t0);
    deps.log.info({ study: studyRef(studyId), embedded, from_cache: fromCache }, 'segmentation done');
    yield {
      msg: {
        $case: 'done',
        value: {
          classes: classResults(seg.labels, table),
          timings,
          model,
          demoWeights: model.demoWeights || head.wire.info!.demo,
          evaluation: evaluationOf(agreement),
          head: head.wire,
          slicesEmbedded: embedded,
          slicesFromCache: fromCache,
        },
      },
    };
  } finally {
    context.signal.removeEventListener('abort', onAbort);
    study.abort();
  }
}

/** The backbone a request runs on: the fitted head's own, or `backbone` (default) for the prompt head. */
async function backboneOf(
  s: segment.SegmentStart,
  head: ResolvedHead,
  deps: SegmentDeps,
  signal: AbortSignal,
): Promise<common.ModelInfo> {
  if (head.kind === 'click') return deps.stages.resolveModel(s.backbone, signal, 'backbone');
  const meta = head.stored.item.meta;
  const ref = `${head.stored.name}@${head.stored.version}`;
  if (s.backbone) checkHeadModel(ref, meta.model, s.backbone);
  const model = await deps.stages.resolveModel(meta.model, signal, 'model');
  if (meta.modelSha256 && model.sha256 !== meta.modelSha256) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `head '${ref}' was fitted on backbone ${meta.model} with other weights (sha256 ${meta.modelSha256.slice(0, 12)}…) than the ones served`,
    );
  }
  if (Number(model.architecture?.hiddenSize) !== head.stored.item.weights.dim) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `head '${ref}' reads ${head.stored.item.weights.dim}-wide tokens; backbone ${meta.model} has another width`,
    );
  }
  return model;
}

interface Prompts {
  readonly points: ReadonlyMap<number, CanonicalPoint[]>;
  readonly boxes: ReadonlyMap<number, CanonicalBox[]>;
}

/** Point and box prompts per object (class index), in canonical coordinates. */
function promptsOf(s: segment.SegmentStart, grid: StudyGrid, objects: readonly SegClass[]): Prompts {
  const index = (label: string): number => objects.findIndex((o) => o.name === (label || 'object')) + 1;
  const points = new Map<number, CanonicalPoint[]>();
  s.points.forEach((p, i) => {
    const c = canonicalOf(grid, p.xyz, p.space, p.frame ?? 0, `points[${i}].xyz`);
    const slice = p.slice ?? Math.round(c.slice);
    if (!(slice >= 0 && slice < grid.canonicalDims[0]))
      throw new CuriaError('INVALID_ARGUMENT', `points[${i}].slice lies outside the volume`);
    const k = index(p.label);
    points.set(k, [...(points.get(k) ?? []), { slice, row: c.row, col: c.col, positive: p.positive }]);
  });
  for (const [k, list] of points) {
    if (!list.some((p) => p.positive)) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `points: object '${objects[k - 1]!.name}' has no positive point`,
      );
    }
  }
  const boxes = new Map<number, CanonicalBox[]>();
  s.boxes.forEach((b, i) => {
    const lo = canonicalOf(grid, b.min, b.space, b.frame ?? 0, `boxes[${i}].min`);
    const hi = canonicalOf(grid, b.max, b.space, b.frame ?? 0, `boxes[${i}].max`);
    if (b.min.some((v, a) => v > b.max[a]!))
      throw new CuriaError('INVALID_ARGUMENT', `boxes[${i}]: min must be <= max on every axis`);
    const span = (x: number, y: number): [number, number] => [Math.min(x, y), Math.max(x, y)];
    const k = index(b.label);
    boxes.set(k, [
      ...(boxes.get(k) ?? []),
      { slices: span(lo.slice, hi.slice), rows: span(lo.row, hi.row), cols: span(lo.col, hi.col) },
    ]);
  });
  return { points, boxes };
}

/**
 * Per-slice class scores of the prompt head: background 0.5 everywhere, each object 1 on its
 * tokens and 0 elsewhere (the sampler interpolates them, so object edges fall halfway between tokens).
 */
function clickScores(
  prompts: Prompts,
  table: ClassTable,
  grid: StudyGrid,
  model: ModelGrid,
  dim: number,
  tokens: (slice: number) => Float32Array,
  propagate: boolean,
): (slice: number) => Float32Array {
  const g = tokenGridSize(model);
  const [slices, rows, cols] = grid.canonicalDims;
  const masks = [...prompts.points].map(([k, points]) => ({
    k,
    result: segmentByClicks(points, prompts.boxes.get(k) ?? [], {
      slices,
      rows,
      cols,
      grid: g,
      dim,
      tokens,
      propagate,
    }),
  }));
  return (slice) => {
    const out = new Float32Array(table.size * g * g);
    out.fill(0.5, 0, g * g);
    for (const { k, result } of masks) {
      const m = result.get(slice);
      if (m) for (let t = 0; t < g * g; t++) out[k * g * g + t] = m[t]!;
    }
    return out;
  };
}

/** Passes upload chunks through, keeping each file's bytes in `into` when it is given. */
async function* keepFiles(
  chunks: AsyncGenerator<common.FileChunk>,
  into: Map<string, Uint8Array[]> | undefined,
): AsyncGenerator<common.FileChunk> {
  for await (const c of chunks) {
    if (into) {
      let parts = into.get(c.fileName);
      if (!parts) into.set(c.fileName, (parts = []));
      parts.push(c.data);
    }
    yield c;
  }
}

/** The DICOM SEG object of a label map on the grid of an uploaded DICOM series. */
function dicomSegFile(
  files: ReadonlyMap<string, readonly Uint8Array[]>,
  labels: Uint8Array,
  grid: StudyGrid,
  table: ClassTable,
  o: { readonly demo: boolean; readonly head: string },
): Uint8Array {
  const sources = [...files.values()].map((parts) => {
    try {
      return { dataset: naturalizedHeader(Buffer.concat(parts)) };
    } catch {
      throw new CuriaError(
        'FAILED_PRECONDITION',
        'output.dicom_seg: the study is not a DICOM series (an uploaded file is not DICOM)',
      );
    }
  });
  if (sources.length !== grid.inputDims[2]) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `output.dicom_seg: the series has ${sources.length} files for ${grid.inputDims[2]} slices (one instance per slice is required)`,
    );
  }
  return dicomSegOf({
    sources,
    labels,
    dims: grid.inputDims,
    classes: table.classes,
    demo: o.demo,
    algorithm: { name: `Curia segment ${o.head}`, version: '1' },
  });
}
