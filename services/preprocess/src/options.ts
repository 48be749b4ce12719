import { CuriaError } from '@curia/errors';
import { common } from '@curia/proto';
import { selectionFromWire, type PreprocessSpec, type SliceSelection } from '@curia/volume';

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
export function sliceSelection(sel: common.SliceSelection | undefined): SliceSelection {
  return selectionFromWire(sel, 'options.selection');
}

/** Applies the request's `clip_below_air` override to a bundle spec. */
export function withClip(spec: PreprocessSpec, clip: boolean | undefined): PreprocessSpec {
  return clip === undefined || clip === spec.clipBelowAir ? spec : { ...spec, clipBelowAir: clip };
}

/** Checks `header.study_id` (shared with the gateway: it is logged, so its alphabet is restricted). */
export { checkStudyId } from '@curia/kit';
