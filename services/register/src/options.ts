import { CuriaError } from '@curia/errors';
import { common, register } from '@curia/proto';
import {
  CONVEX_ADAM_DEFAULTS,
  type FeatureKind,
  type Modality,
  type SimilarityKind,
  type TransformKind,
} from '@curia/register';
import type { Volume } from '@curia/volume';

/** A Register request's options, checked and with defaults filled in. */
export interface RegisterPlan {
  readonly transform: TransformKind;
  readonly features: FeatureKind;
  readonly workingSpacingMm: number;
  /** Deformable settings (undefined fields: the engine's defaults). */
  readonly deformable: {
    readonly searchRadius?: number;
    readonly lambda?: number;
    readonly iterations?: number;
    readonly adamStride?: number;
    readonly inverseConsistent: boolean;
  };
  readonly backbone: string;
  /** Frame of the returned transform and slab vectors. */
  readonly frame: 'LPS' | 'RAS';
  /** Reported similarity. */
  readonly metric: SimilarityKind;
  readonly outputs: {
    readonly displacement: boolean;
    readonly inverse: boolean;
    readonly displacementFormat: 'slabs' | 'nifti';
    readonly displacementDType: 'F32' | 'F16';
    readonly warpedImage: boolean;
    readonly warpedFormat: 'nifti' | 'slabs';
  };
}

/** Working grid spacing when the request leaves it at 0, mm: on CPU, and on CUDA. */
export const DEFAULT_WORKING_SPACING_MM = 3;
export const DEFAULT_WORKING_SPACING_MM_CUDA = 2;
/** Finest and coarsest working grid spacing accepted, mm. */
export const WORKING_SPACING_RANGE_MM: readonly [number, number] = [0.5, 20];
/** Most optimiser iterations a request may ask for. */
export const MAX_ITERATIONS = 2000;

const invalid = (m: string): CuriaError => new CuriaError('INVALID_ARGUMENT', m);

function enumValue<E extends Record<string, string | number>>(
  e: E,
  v: number,
  field: string,
  names: string,
): E[keyof E] {
  if (!(v in e) || typeof e[v as keyof E] !== 'string') throw invalid(`${field} ${v} is not one of ${names}`);
  return v as E[keyof E];
}

/** The engine's modality of an input: its hint, else DICOM Modality (CT, MR, PT, …), else `other`. */
export function modalityOf(hint: register.Modality, volume: Volume, field: string): Modality {
  switch (enumValue(register.Modality, hint, field, 'UNSPECIFIED, CT, MR, PET, CBCT, OTHER')) {
    case register.Modality.CT:
      return 'ct';
    case register.Modality.MR:
      return 'mr';
    case register.Modality.PET:
      return 'pet';
    case register.Modality.CBCT:
      return 'cbct';
    case register.Modality.OTHER:
      return 'other';
    default: {
      const m = volume.info.format === 'dicom' ? volume.info.modality : '';
      return m === 'CT' ? 'ct' : m === 'MR' ? 'mr' : m === 'PT' ? 'pet' : 'other';
    }
  }
}

/**
 * Checks a request's options and fills in defaults: every contradiction or out-of-range value is
 * INVALID_ARGUMENT naming the field (an enum value the contract does not define included).
 * `sameModality` picks the reported metric when the request leaves it unset (NCC for one modality,
 * mutual information across modalities).
 */
export function planOf(
  o: register.RegisterOptions | undefined,
  sameModality: boolean,
  defaultWorkingSpacingMm = DEFAULT_WORKING_SPACING_MM,
): RegisterPlan {
  const opts = o ?? register.RegisterOptions.fromPartial({});
  const f = (name: string) => `start.options.${name}`;
  const transformEnum = enumValue(
    register.TransformModel,
    opts.transform,
    f('transform'),
    'UNSPECIFIED, RIGID, AFFINE, DEFORMABLE',
  );
  const transform: TransformKind =
    transformEnum === register.TransformModel.RIGID
      ? 'rigid'
      : transformEnum === register.TransformModel.AFFINE
        ? 'affine'
        : 'deformable';
  const deformable = transform === 'deformable';
  const onlyDeformable = (name: string, set: boolean): void => {
    if (set && !deformable)
      throw invalid(
        `${f(name)} applies to DEFORMABLE registration only (transform is ${transform.toUpperCase()})`,
      );
  };

  const featureEnum = enumValue(
    register.FeatureSet,
    opts.features,
    f('features'),
    'UNSPECIFIED, MIND, CURIA, HYBRID',
  );
  const features: FeatureKind =
    featureEnum === register.FeatureSet.CURIA
      ? 'curia'
      : featureEnum === register.FeatureSet.HYBRID
        ? 'hybrid'
        : 'mind';
  if (opts.backbone && features === 'mind') {
    throw invalid(
      `${f('backbone')} is used by FEATURE_SET_CURIA and FEATURE_SET_HYBRID only (features is MIND)`,
    );
  }

  const ws = opts.workingSpacingMm;
  if (!Number.isFinite(ws) || ws < 0)
    throw invalid(
      `${f('working_spacing_mm')} must be a finite number of mm >= 0 (0 = ${defaultWorkingSpacingMm})`,
    );
  const workingSpacingMm = ws === 0 ? defaultWorkingSpacingMm : ws;
  if (workingSpacingMm < WORKING_SPACING_RANGE_MM[0] || workingSpacingMm > WORKING_SPACING_RANGE_MM[1]) {
    throw invalid(`${f('working_spacing_mm')} ${ws} is outside [${WORKING_SPACING_RANGE_MM.join(', ')}] mm`);
  }

  const gs = opts.gridSpacingMm;
  if (!Number.isFinite(gs) || gs < 0)
    throw invalid(`${f('grid_spacing_mm')} must be a finite number of mm > 0 (0 = default)`);
  onlyDeformable('grid_spacing_mm', gs > 0);
  const adamStride = gs > 0 ? Math.min(8, Math.max(1, Math.round(gs / workingSpacingMm))) : undefined;

  const lambda = opts.regularizationWeight;
  if (lambda !== undefined && !(Number.isFinite(lambda) && lambda >= 0 && lambda <= 1e6)) {
    throw invalid(`${f('regularization_weight')} must be in [0, 1e6]`);
  }
  onlyDeformable('regularization_weight', lambda !== undefined);

  if (opts.iterations > MAX_ITERATIONS)
    throw invalid(`${f('iterations')} ${opts.iterations} is above ${MAX_ITERATIONS}`);
  onlyDeformable('iterations', opts.iterations > 0);

  if (opts.searchRadius !== 0 && (opts.searchRadius < 1 || opts.searchRadius > 8)) {
    throw invalid(`${f('search_radius')} ${opts.searchRadius} is outside 1..8 working-grid voxels`);
  }
  onlyDeformable('search_radius', opts.searchRadius > 0);
  onlyDeformable('inverse_consistent', opts.inverseConsistent);

  const metricEnum = enumValue(
    register.SimilarityMetric,
    opts.metric,
    f('metric'),
    'UNSPECIFIED, MSE, NCC, MUTUAL_INFORMATION',
  );
  let metric: SimilarityKind;
  switch (metricEnum) {
    case register.SimilarityMetric.MSE:
      metric = 'mse';
      break;
    case register.SimilarityMetric.NCC:
      metric = 'ncc';
      break;
    case register.SimilarityMetric.MUTUAL_INFORMATION:
      metric = 'mi';
      break;
    default:
      metric = sameModality ? 'ncc' : 'mi';
  }

  const frameEnum = enumValue(common.CoordinateFrame, opts.frame, f('frame'), 'UNSPECIFIED, RAS, LPS');
  const dtype = opts.displacementDtype;
  if (dtype !== common.DType.UNSPECIFIED && dtype !== common.DType.F32 && dtype !== common.DType.F16) {
    throw invalid(`${f('displacement_dtype')} must be F32 or F16`);
  }
  const dispFormat = enumValue(
    register.DisplacementFormat,
    opts.displacementFormat,
    f('displacement_format'),
    'UNSPECIFIED, SLABS, NIFTI',
  );
  const warpedFormat = enumValue(
    register.WarpedFormat,
    opts.warpedFormat,
    f('warped_format'),
    'UNSPECIFIED, NIFTI, TENSOR_SLABS',
  );
  if (dispFormat === register.DisplacementFormat.NIFTI && dtype === common.DType.F16) {
    throw invalid(
      `${f('displacement_dtype')} F16: NIfTI displacement files are F32 (as ITK and ANTs read them)`,
    );
  }
  return {
    transform,
    features,
    workingSpacingMm,
    deformable: {
      // The contract counts working-grid voxels; the cost volume lives on a grid pooled by `stride`.
      ...(opts.searchRadius
        ? { searchRadius: Math.ceil(opts.searchRadius / CONVEX_ADAM_DEFAULTS.stride) }
        : {}),
      ...(lambda !== undefined ? { lambda } : {}),
      ...(opts.iterations ? { iterations: opts.iterations } : {}),
      ...(adamStride ? { adamStride } : {}),
      inverseConsistent: opts.inverseConsistent,
    },
    backbone: opts.backbone,
    frame: frameEnum === common.CoordinateFrame.RAS ? 'RAS' : 'LPS',
    metric,
    outputs: {
      displacement: opts.returnDisplacement,
      inverse: opts.returnInverse,
      displacementFormat: dispFormat === register.DisplacementFormat.NIFTI ? 'nifti' : 'slabs',
      displacementDType: dtype === common.DType.F16 ? 'F16' : 'F32',
      warpedImage: opts.returnWarpedImage,
      warpedFormat: warpedFormat === register.WarpedFormat.TENSOR_SLABS ? 'slabs' : 'nifti',
    },
  };
}
