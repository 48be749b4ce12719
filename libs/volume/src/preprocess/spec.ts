import { CuriaError } from '@curia/errors';

/**
 * How a canonical slice becomes model input. A model bundle manifest carries one; the engine
 * applies: resize -> optional clamp -> normalisation.
 */
export interface PreprocessSpec {
  /** Output slice size [height, width]. Curia: [512, 512]. */
  readonly targetSize: readonly [number, number];
  /** Resampling: torch `F.interpolate(mode='bicubic', align_corners=False, antialias=True)`. */
  readonly resize: 'bicubic-antialias';
  /** Clamp values below `clipMin` after resizing (Curia `clip_below_air`). */
  readonly clipBelowAir: boolean;
  /** Lower clamp bound in stored units (HU for CT). Curia: -1000. */
  readonly clipMin: number;
  /** Per-slice z-score with the unbiased std (N-1) and std < `stdEpsilon` -> 1, or no normalisation. */
  readonly normalize: 'zscore' | 'none';
  readonly stdEpsilon: number;
}

/** The published Curia image processor settings. */
export const CURIA_DEFAULT_PREPROCESS_SPEC: PreprocessSpec = Object.freeze({
  targetSize: Object.freeze<[number, number]>([512, 512]),
  resize: 'bicubic-antialias',
  clipBelowAir: false,
  clipMin: -1000,
  normalize: 'zscore',
  stdEpsilon: 1e-6,
});

/** The preprocessing block of a model bundle's manifest (`bundle.json` → `preprocess`). */
export interface BundlePreprocess {
  /** Square model input side (the slice is resized to image_size × image_size). */
  readonly image_size: number;
  readonly clip_below_air: boolean;
}

/**
 * The spec a bundle's `preprocess` block describes: Curia's (bicubic antialias resize, unbiased
 * z-score) at the bundle's input size, with its `clip_below_air`. What Preprocess applies when a
 * request names the bundle, and what in-process embedding must apply to match it.
 */
export function bundlePreprocessSpec(p: BundlePreprocess): PreprocessSpec {
  return {
    ...CURIA_DEFAULT_PREPROCESS_SPEC,
    targetSize: [p.image_size, p.image_size],
    clipBelowAir: p.clip_below_air,
    normalize: 'zscore',
  };
}

/** Largest accepted target side; larger sizes are certainly a manifest mistake. */
export const MAX_TARGET_SIDE = 4096;

/** Throws INVALID_ARGUMENT naming the first bad field of a spec. */
export function validatePreprocessSpec(spec: PreprocessSpec): void {
  const [h, w] = spec.targetSize;
  for (const [name, v] of [
    ['targetSize[0]', h],
    ['targetSize[1]', w],
  ] as const) {
    if (!Number.isInteger(v) || v < 1 || v > MAX_TARGET_SIDE) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `PreprocessSpec.${name} is ${v}; must be an integer in 1..${MAX_TARGET_SIDE}`,
      );
    }
  }
  if (spec.resize !== 'bicubic-antialias') {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `PreprocessSpec.resize '${String(spec.resize)}' is unknown; use 'bicubic-antialias'`,
    );
  }
  if (spec.normalize !== 'zscore' && spec.normalize !== 'none') {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `PreprocessSpec.normalize '${String(spec.normalize)}' is unknown; use 'zscore' or 'none'`,
    );
  }
  if (!Number.isFinite(spec.clipMin))
    throw new CuriaError('INVALID_ARGUMENT', 'PreprocessSpec.clipMin must be finite');
  if (!(spec.stdEpsilon >= 0))
    throw new CuriaError('INVALID_ARGUMENT', 'PreprocessSpec.stdEpsilon must be >= 0');
}
