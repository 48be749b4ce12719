import { CuriaError } from '@curia/errors';
import { HEAD_NAME_RE } from '@curia/heads';
import { checkStudyId, readStart, type CuriaCallContext } from '@curia/kit';
import { common, segment } from '@curia/proto';
import {
  ClassTable,
  fitSegmenter,
  readLabelMap,
  SEGMENT_FIT_DEFAULTS,
  type LabelledSlice,
  type SegClass,
  type SegmentHeadRecord,
} from '@curia/segment';

import { CLICK_HEAD } from './heads.js';
import type { SegmentDeps } from './segment.js';
import { studyDeadlines } from './segment.js';
import { modelGridOf, preprocessStudy, studyGridOf, tokensOf, tokenValues } from './study.js';

/** Caps on free-form Fit fields (checked before any work). */
export const FIT_LIMITS = {
  descriptionBytes: 4096,
  classes: 255,
  classNameBytes: 64,
  maxIterations: 2000,
  folds: 20,
} as const;

/** Pulls Fit messages with one message of look-ahead: a study's chunks end where the next `study` begins. */
class FitReader {
  private held: segment.FitRequest | undefined;

  constructor(private readonly input: AsyncIterator<segment.FitRequest>) {}

  async next(): Promise<segment.FitRequest | undefined> {
    if (this.held) {
      const h = this.held;
      this.held = undefined;
      return h;
    }
    const r = await this.input.next();
    return r.done ? undefined : r.value;
  }

  /** The current study's chunks, up to the next `study` message (left for {@link next}). */
  async *chunks(): AsyncGenerator<common.FileChunk> {
    for (;;) {
      const m = await this.next();
      if (!m) return;
      if (m.msg?.$case === 'chunk') yield m.msg.value;
      else {
        this.held = m;
        return;
      }
    }
  }
}

function checkStart(s: segment.FitStart): { table?: ClassTable; kind: 'linear' | 'conv3x3' } {
  if (!HEAD_NAME_RE.test(s.name)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `start.name '${s.name}' must be lowercase [a-z0-9-], 1..64 characters`,
    );
  }
  if (s.name === CLICK_HEAD)
    throw new CuriaError('INVALID_ARGUMENT', `start.name '${CLICK_HEAD}' is the prompt head's name`);
  if (Buffer.byteLength(s.description) > FIT_LIMITS.descriptionBytes) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `start.description is longer than ${FIT_LIMITS.descriptionBytes} bytes`,
    );
  }
  if (s.classes.length > FIT_LIMITS.classes)
    throw new CuriaError('INVALID_ARGUMENT', `start.classes: at most ${FIT_LIMITS.classes}`);
  s.classes.forEach((c, i) => {
    if (Buffer.byteLength(c.label) > FIT_LIMITS.classNameBytes) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `start.classes[${i}].label is longer than ${FIT_LIMITS.classNameBytes} bytes`,
      );
    }
  });
  if (!(Number.isFinite(s.l2) && s.l2 >= 0))
    throw new CuriaError('INVALID_ARGUMENT', 'start.l2 must be a finite number >= 0');
  if (s.maxIterations > FIT_LIMITS.maxIterations) {
    throw new CuriaError('INVALID_ARGUMENT', `start.max_iterations is above ${FIT_LIMITS.maxIterations}`);
  }
  if (s.folds > FIT_LIMITS.folds)
    throw new CuriaError('INVALID_ARGUMENT', `start.folds is above ${FIT_LIMITS.folds}`);
  const kind =
    s.kind === segment.SegmentHeadKind.CONV3X3
      ? 'conv3x3'
      : s.kind === segment.SegmentHeadKind.LINEAR || s.kind === segment.SegmentHeadKind.UNSPECIFIED
        ? 'linear'
        : (() => {
            throw new CuriaError('INVALID_ARGUMENT', 'start.kind must be LINEAR or CONV3X3');
          })();
  const table = s.classes.length
    ? new ClassTable(
        s.classes.map((c) => ({ value: c.value, name: c.label })),
        'start.classes',
      )
    : undefined;
  return { table, kind };
}

/** A labelled slice before the class list is final. */
interface Collected {
  readonly tokens: Float32Array;
  readonly labels: Uint8Array;
  readonly rows: number;
  readonly cols: number;
}

/**
 * Fit: reads the labelled studies one after another (each preprocessed and embedded through the
 * stages, labelled slices only), then fits, cross-validates and stores a new head version.
 */
export async function fitSegmentationHead(
  requests: AsyncIterable<segment.FitRequest>,
  context: CuriaCallContext & { signal: AbortSignal },
  deps: SegmentDeps,
  caller: string,
): Promise<segment.FitResponse> {
  const held: (() => void)[] = [];
  try {
    return await fit(requests, context, deps, held, caller);
  } finally {
    for (const release of held.splice(0)) release();
  }
}

/** What {@link readLabelMap} calls with a label map's header. */
type AdmitLabels = NonNullable<Parameters<typeof readLabelMap>[3]>;

/**
 * Takes what a label map decodes to from the memory budget, from its header and before it is
 * inflated: the voxels opening holds, plus the float64 slice and the byte plane a label plane is
 * read through (over the two largest dims), held until the Fit ends.
 */
function admitLabels(
  deps: SegmentDeps,
  held: (() => void)[],
  field: string,
  signal: AbortSignal,
): AdmitLabels | undefined {
  const memory = deps.memory;
  if (!memory) return undefined;
  return async (v) => {
    const [a, b] = [...v.dims].sort((x, y) => y - x) as [number, number, number];
    held.push(
      await memory.acquire(v.heldBytes + a * b * 9, {
        what: `${field} ${v.dims.join('x')} ${v.voxelType}`,
        signal,
      }),
    );
  };
}

async function fit(
  requests: AsyncIterable<segment.FitRequest>,
  context: CuriaCallContext & { signal: AbortSignal },
  deps: SegmentDeps,
  held: (() => void)[],
  caller: string,
): Promise<segment.FitResponse> {
  const t0 = performance.now();
  const { start: s, rest } = await readStart(requests, 'Fit');
  const reader = new FitReader(rest);
  const { table: given, kind } = checkStart(s);
  if (s.idempotencyKey) {
    const previous = deps.heads.store.byIdempotencyKey(s.idempotencyKey);
    if (previous) return { head: deps.heads.wire(previous), reused: true };
  }
  // Before any stage work: a head that could not be stored is not worth fitting.
  deps.heads.checkWritable();
  const signal = context.signal;
  const deadlines = studyDeadlines(context, deps.env.CURIA_SEGMENT_DEFAULT_DEADLINE_MS);
  const model = await deps.stages.resolveModel(s.model, signal, 'start.model');
  const modelRef = `${model.name}@${model.version}`;
  const grid = modelGridOf(model);
  const dim = Number(model.architecture?.hiddenSize ?? 0);
  const bundle = (await deps.stages.preprocessKnows(modelRef, signal)) ? modelRef : '';
  const collected: Collected[] = [];
  const timings: Record<string, number> = {};
  const tEmbed = performance.now();
  for (let i = 0; ; i++) {
    const m = await reader.next();
    if (!m) break;
    if (m.msg?.$case !== 'study') {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `message after study ${i - 1}: expected \`study\`, got \`${m.msg?.$case ?? 'nothing'}\``,
      );
    }
    const st = m.msg.value;
    const field = `studies[${i}]`;
    checkStudyId(st.header?.studyId ?? '');
    if (!st.source) throw new CuriaError('INVALID_ARGUMENT', `${field}.source is required (ref or streamed)`);
    if (st.labels?.encoding?.$case !== 'nifti')
      throw new CuriaError('INVALID_ARGUMENT', `${field}.labels is required (a NIfTI label map)`);
    const labels = await readLabelMap(
      st.labels.encoding.value,
      `${field}.labels`,
      signal,
      admitLabels(deps, held, `${field}.labels`, signal),
    );
    const slices = labels.grid.canonicalDims[0];
    let wanted: number[];
    if (st.labelledSlices.length) {
      wanted = [...new Set(st.labelledSlices)].sort((a, b) => a - b);
      const bad = wanted.find((k) => k >= slices);
      if (bad !== undefined)
        throw new CuriaError(
          'INVALID_ARGUMENT',
          `${field}.labelled_slices: slice ${bad} is outside 0..${slices - 1}`,
        );
      for (const k of wanted) {
        if ((await labels.valuesOn(k)).size === 0) {
          throw new CuriaError('INVALID_ARGUMENT', `${field}.labelled_slices: slice ${k} holds no label`);
        }
      }
    } else {
      wanted = [];
      for (let k = 0; k < slices; k++) if ((await labels.valuesOn(k)).size > 0) wanted.push(k);
      if (wanted.length === 0)
        throw new CuriaError('INVALID_ARGUMENT', `${field}.labels is empty: no slice holds a label`);
    }
    if (collected.length + wanted.length > deps.env.CURIA_SEGMENT_MAX_FIT_SLICES) {
      throw new CuriaError(
        'RESOURCE_EXHAUSTED',
        `the studies label more than ${deps.env.CURIA_SEGMENT_MAX_FIT_SLICES} slices (CURIA_SEGMENT_MAX_FIT_SLICES); name fewer labelled_slices`,
      );
    }
    const pre = await preprocessStudy(deps, {
      start: {
        header: st.header,
        source: st.source,
        options: {
          modelBundle: bundle,
          outputDtype: common.DType.F32,
          // Every slice is preprocessed (cheap) so a label map on another grid is refused with the
          // grid check below, not by Preprocess rejecting the selection; only labelled slices are embedded.
          selection: { selection: { $case: 'all', value: {} } },
        },
      },
      upload: st.source.$case === 'streamed' ? reader.chunks() : undefined,
      signal,
      deadline: deadlines.pipeline,
    });
    labels.checkGrid(studyGridOf(pre.geometry.geometry));
    const [, rows, cols] = labels.grid.canonicalDims;
    const labelled = new Set(wanted);
    for await (const t of tokensOf(deps, pre, {
      model,
      studyId: st.header?.studyId ?? '',
      want: (k) => labelled.has(k),
      signal,
      deadline: deadlines.pipeline,
    })) {
      collected.push({
        tokens: tokenValues(t.tensor, grid, dim, 'embed patch tokens'),
        labels: await labels.plane(t.mapping.canonicalIndex),
        rows,
        cols,
      });
    }
  }
  if (collected.length === 0)
    throw new CuriaError('INVALID_ARGUMENT', 'no study was sent: send at least one `study` after `start`');
  timings.embed = performance.now() - tEmbed;
  deps.metrics.stage.observe({ stage: 'fit_embed' }, timings.embed / 1000);
  const present = new Set<number>();
  for (const c of collected) for (const v of c.labels) if (v) present.add(v);
  const table =
    given ??
    new ClassTable(
      [...present].sort((a, b) => a - b).map((value): SegClass => ({ value, name: `class-${value}` })),
      'labels',
    );
  const absent = table.classes.filter((c) => !present.has(c.value));
  if (absent.length) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `start.classes: ${absent.map((c) => c.name).join(', ')} appear on no labelled slice`,
    );
  }
  const folds = s.folds || Math.min(SEGMENT_FIT_DEFAULTS.maxFolds, collected.length);
  if (folds > collected.length) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `start.folds ${folds} needs at least ${folds} labelled slices (got ${collected.length})`,
    );
  }
  const l2 = s.l2 || SEGMENT_FIT_DEFAULTS.l2;
  const maxIterations = s.maxIterations || SEGMENT_FIT_DEFAULTS.maxIterations;
  const tTrain = performance.now();
  const fitted = await fitSegmenter(collected satisfies readonly LabelledSlice[], {
    kind,
    table,
    model: grid,
    dim,
    l2,
    folds,
    maxIterations,
    signal,
  });
  timings.train = performance.now() - tTrain;
  deps.metrics.stage.observe({ stage: 'fit_train' }, timings.train / 1000);
  if (signal.aborted) throw new CuriaError('CANCELLED', 'Fit was cancelled; nothing was stored');
  timings.total = performance.now() - t0;
  const record: SegmentHeadRecord = {
    meta: {
      format: 'curia-segment-head/1',
      name: s.name,
      version: '',
      kind,
      classes: [...table.classes],
      dim,
      imageSize: grid.imageSize,
      patchSize: grid.patchSize,
      model: modelRef,
      modelSha256: model.sha256,
      demo: s.demo || model.demoWeights,
      description: s.description,
      smoothAcrossSlices: s.smoothAcrossSlices,
      ...(s.idempotencyKey ? { idempotencyKey: s.idempotencyKey } : {}),
      createdAt: new Date().toISOString(),
      fit: {
        cvDice: Object.fromEntries(fitted.cvDice),
        slices: collected.length,
        tokens: fitted.tokens,
        folds: fitted.folds,
        l2,
        maxIterations,
        timingsMs: timings,
      },
    },
    weights: fitted.head,
  };
  // The unversioned name moves only when asked (issue #17): a Fit adds a version beside it.
  const stored = await deps.heads.add(s.name, record, { promote: s.promote, caller });
  deps.metrics.fits.inc();
  for (const [name, dice] of fitted.cvDice) deps.metrics.fitDice.set({ head: s.name, class: name }, dice);
  deps.log.info(
    { head: s.name, version: stored.version, slices: collected.length, kind, promote: s.promote, caller },
    'segmentation head fitted',
  );
  return { head: deps.heads.wire(stored), reused: false };
}
