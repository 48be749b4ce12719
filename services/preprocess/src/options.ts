import { CuriaError } from '@curia/errors';
import { common } from '@curia/proto';
import type { PreprocessSpec, SliceSelection } from '@curia/volume';

/** Output element type of the slice tensors. */
export type OutputDType = 'F32' | 'F16';

/** Maps `options.output_dtype`: UNSPECIFIED/F32 → F32, F16 → F16, anything else INVALID_ARGUMENT. */
export function outputDType(d: common.DType): OutputDType {
  if (d === common.DType.UNSPECIFIED || d === common.DType.F32) return 'F32';
  if (d === common.DType.F16) return 'F16';
  throw new CuriaError(
    'INVALID_ARGUMENT',
    `options.output_dtype ${common.DType[d] ?? String(d)} is not supported; use D_TYPE_F32 or D_TYPE_F16`,
  );
}

/** Maps `options.selection` to the engine's selection (indices deduplicated and ascending). */
export function sliceSelection(sel: common.SliceSelection | undefined, nested = false): SliceSelection {
  const s = sel?.selection;
  if (!s) return { kind: 'all' };
  switch (s.$case) {
    case 'all':
      return { kind: 'all' };
    case 'indices': {
      if (s.value.indices.length === 0) {
        throw new CuriaError('INVALID_ARGUMENT', 'options.selection.indices.indices is empty');
      }
      return { kind: 'indices', indices: [...new Set(s.value.indices)].sort((a, b) => a - b) };
    }
    case 'everyKth':
      if (s.value < 1) throw new CuriaError('INVALID_ARGUMENT', 'options.selection.every_kth must be >= 1');
      return { kind: 'every', step: s.value };
    case 'centralCount':
      if (s.value < 1)
        throw new CuriaError('INVALID_ARGUMENT', 'options.selection.central_count must be >= 1');
      return { kind: 'central', count: s.value };
    case 'anyOf': {
      if (nested)
        throw new CuriaError('INVALID_ARGUMENT', 'options.selection.any_of parts must not nest any_of');
      if (s.value.parts.length === 0) {
        throw new CuriaError('INVALID_ARGUMENT', 'options.selection.any_of.parts is empty');
      }
      return { kind: 'union', parts: s.value.parts.map((p) => sliceSelection(p, true)) };
    }
  }
}

/** Applies the request's `clip_below_air` override to a bundle spec. */
export function withClip(spec: PreprocessSpec, clip: boolean | undefined): PreprocessSpec {
  return clip === undefined || clip === spec.clipBelowAir ? spec : { ...spec, clipBelowAir: clip };
}

const STUDY_ID = /^[A-Za-z0-9._:-]{0,128}$/;

/** Checks `header.study_id` (it is logged, so its alphabet is restricted). */
export function checkStudyId(id: string): void {
  if (!STUDY_ID.test(id)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      'header.study_id must be at most 128 characters of [A-Za-z0-9._:-] (it is logged; never use PHI)',
    );
  }
}
