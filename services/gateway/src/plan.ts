import { MAX_FEATURE_OUTPUTS, MAX_STUDY_HEADS } from '@curia/client';
import { CuriaError } from '@curia/errors';
import { common } from '@curia/proto';
import { featureKey } from '@curia/stages';
import {
  resolveSelection,
  selectionFromWire,
  type SliceSelection,
  type WireSliceSelection,
} from '@curia/volume';

/** A head resolved for this study and where its inputs sit in the shared output list. */
export interface PlannedHead {
  /** The head version, as HeadsService described it. */
  readonly info: common.HeadInfo;
  /** `name@version`, what Predict is called with. */
  readonly ref: string;
  /** For each of the head's feature requirements, its position in {@link AnalysisPlan.outputs}. */
  readonly outputIndex: readonly number[];
  /** Which canonical slices the head reads. */
  readonly selection: SliceSelection;
}

/** What one study needs from the backbone, decided before any work starts. */
export interface AnalysisPlan {
  /** Distinct backbone outputs the Embed stream requests (union over heads and embedding_outputs). */
  readonly outputs: readonly common.FeatureRequest[];
  /** Stable key of each output (cache keys). */
  readonly outputKeys: readonly string[];
  /** Position in `outputs` of each requested embedding output (request order). */
  readonly embeddingIndex: readonly number[];
  /** Slices whose embeddings are returned; undefined when no embedding output was requested. */
  readonly embeddingSelection: SliceSelection | undefined;
  readonly heads: readonly PlannedHead[];
  /** True when some output is mask-pooled (so the mask shapes the features and their cache keys). */
  readonly usesMask: boolean;
  /**
   * Position in `outputs` of the patch tokens (F16) streamed to SegmentService for every slice,
   * when segmentation heads run.
   */
  readonly segmentationIndex: number | undefined;
}

/** The patch tokens segmentation heads read: post-LayerNorm, F16 on the wire. */
export const SEGMENTATION_TOKENS: common.FeatureRequest = {
  kind: { $case: 'patchTokens', value: { prenorm: false } },
  dtype: common.DType.F16,
};

/**
 * Builds the plan of a study: validates the requested outputs and heads, merges identical
 * feature requests, and records which slices each consumer reads.
 */
export function planAnalysis(
  start: {
    readonly embeddingOutputs: readonly common.FeatureRequest[];
    readonly embeddingSelection?: WireSliceSelection | undefined;
    readonly hasMask: boolean;
    /** Segmentation heads run on this study (they read every slice's patch tokens). */
    readonly segmentation?: boolean;
  },
  heads: readonly common.HeadInfo[],
): AnalysisPlan {
  if (heads.length > MAX_STUDY_HEADS) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `heads names ${heads.length} heads; at most ${MAX_STUDY_HEADS} per study`,
    );
  }
  const outputs: common.FeatureRequest[] = [];
  const outputKeys: string[] = [];
  const indexOf = (f: common.FeatureRequest, field: string): number => {
    let key: string;
    try {
      key = featureKey(f);
    } catch (e) {
      throw new CuriaError('INVALID_ARGUMENT', `${field}: ${(e as Error).message}`);
    }
    const at = outputKeys.indexOf(key);
    if (at >= 0) return at;
    outputs.push(f);
    outputKeys.push(key);
    return outputs.length - 1;
  };
  const embeddingIndex = start.embeddingOutputs.map((f, i) => indexOf(f, `embedding_outputs[${i}]`));
  const planned = heads.map((info): PlannedHead => {
    const req = info.requirements;
    const ref = `${info.name}@${info.version}`;
    if (!req || req.features.length === 0) {
      throw new CuriaError('FAILED_PRECONDITION', `head '${ref}' declares no feature requirements`);
    }
    if (req.requiresMask && !start.hasMask) {
      throw new CuriaError('INVALID_ARGUMENT', `head '${ref}' needs a region of interest: set mask`);
    }
    return {
      info,
      ref,
      outputIndex: req.features.map((f, i) => indexOf(f, `head '${ref}' requirement ${i}`)),
      selection: selectionFromWire(req.slices, `head '${ref}' requirements.slices`),
    };
  });
  const segmentationIndex = start.segmentation
    ? indexOf(SEGMENTATION_TOKENS, 'segmentation_heads')
    : undefined;
  if (outputs.length > MAX_FEATURE_OUTPUTS) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `the heads and embedding_outputs need ${outputs.length} distinct backbone outputs; at most ${MAX_FEATURE_OUTPUTS}`,
    );
  }
  const usesMask = outputs.some((f) => f.kind?.$case === 'maskPooled');
  if (usesMask && !start.hasMask) {
    throw new CuriaError('INVALID_ARGUMENT', 'a mask_pooled output was requested: set mask');
  }
  return {
    outputs,
    outputKeys,
    embeddingIndex,
    embeddingSelection:
      embeddingIndex.length > 0
        ? selectionFromWire(start.embeddingSelection, 'embedding_selection')
        : undefined,
    heads: planned,
    usesMask,
    segmentationIndex,
  };
}

/** The union of the slices every consumer reads, as one wire selection for PreprocessService. */
export function preprocessSelection(plan: AnalysisPlan): common.SliceSelection {
  const parts: common.SliceSelection[] = [];
  const add = (s: SliceSelection): void => {
    switch (s.kind) {
      case 'all':
        parts.push({ selection: { $case: 'all', value: {} } });
        return;
      case 'indices':
        parts.push({ selection: { $case: 'indices', value: { indices: [...s.indices] } } });
        return;
      case 'every':
        parts.push({ selection: { $case: 'everyKth', value: s.step } });
        return;
      case 'central':
        parts.push({ selection: { $case: 'centralCount', value: s.count } });
        return;
      case 'union':
        s.parts.forEach(add);
        return;
    }
  };
  if (plan.segmentationIndex !== undefined) add({ kind: 'all' });
  if (plan.embeddingSelection) add(plan.embeddingSelection);
  for (const h of plan.heads) add(h.selection);
  if (parts.some((p) => p.selection?.$case === 'all') || parts.length === 0) {
    return { selection: { $case: 'all', value: {} } };
  }
  return parts.length === 1 ? parts[0]! : { selection: { $case: 'anyOf', value: { parts } } };
}

/** Per canonical slice: which outputs some consumer reads from it. */
export interface SliceNeeds {
  /** Output positions needed, per canonical slice index (absent = slice not needed). */
  readonly outputs: ReadonlyMap<number, readonly number[]>;
  /** The canonical slices each head reads, ascending. */
  readonly headSlices: readonly (readonly number[])[];
  /** Canonical slices whose embeddings are returned. */
  readonly embeddingSlices: ReadonlySet<number>;
}

/** Resolves the plan against a volume of `sliceCount` canonical slices (OUT_OF_RANGE names the field). */
export function sliceNeeds(plan: AnalysisPlan, sliceCount: number): SliceNeeds {
  const outputs = new Map<number, Set<number>>();
  const need = (slice: number, idx: readonly number[]): void => {
    let set = outputs.get(slice);
    if (!set) outputs.set(slice, (set = new Set()));
    for (const i of idx) set.add(i);
  };
  const embeddingSlices = new Set<number>(
    plan.embeddingSelection ? resolveSelection(plan.embeddingSelection, sliceCount) : [],
  );
  for (const s of embeddingSlices) need(s, plan.embeddingIndex);
  if (plan.segmentationIndex !== undefined)
    for (let s = 0; s < sliceCount; s++) need(s, [plan.segmentationIndex]);
  const headSlices = plan.heads.map((h) => {
    const slices = [...new Set(resolveSelection(h.selection, sliceCount))].sort((a, b) => a - b);
    for (const s of slices) need(s, h.outputIndex);
    return slices;
  });
  const frozen = new Map<number, readonly number[]>();
  for (const [s, set] of outputs)
    frozen.set(
      s,
      [...set].sort((a, b) => a - b),
    );
  return { outputs: frozen, headSlices, embeddingSlices };
}
