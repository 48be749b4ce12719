import { CuriaError } from '@curia/errors';

/** Voxel axis directions of the stored grid: `LPS` means i -> patient Left, j -> Posterior, k -> Superior. */
export type PhantomOrientation = 'LPS' | 'RAS';

/** Options of {@link generatePhantom}; every field has a default. */
export interface PhantomOptions {
  /** Grid size [nx, ny, nz] (x fastest). Default 256x256x64. */
  readonly size?: readonly [number, number, number];
  /**
   * Voxel spacing in mm. Default: in-plane 409.6 mm / max(nx, ny) (1.6 mm at 256, 0.8 mm at 512, so the
   * body always fits a 41 cm field of view), 2.5 mm between slices.
   */
  readonly spacing?: readonly [number, number, number];
  /** PRNG seed (uint32) of the noise. Default 1. */
  readonly seed?: number;
  /** Standard deviation of the white Gaussian noise in HU. Default 15; 0 gives the noiseless phantom. */
  readonly noiseSigma?: number;
  /** Direction of the stored voxel axes. Default `LPS` (the usual DICOM-derived storage order). */
  readonly orientation?: PhantomOrientation;
  /** Checked once per slice; generation throws CANCELLED when it fires. */
  readonly signal?: AbortSignal;
}

/** A generated phantom: CT values, label map and geometry. */
export interface Phantom {
  /** Hounsfield units, x fastest then y then z (index i + nx * (j + ny * k)). */
  readonly data: Int16Array;
  /** Label value per voxel (same layout as `data`); 0 is background. */
  readonly labels: Uint8Array;
  readonly dims: readonly [number, number, number];
  /** Spacing in mm along i, j, k. */
  readonly spacing: readonly [number, number, number];
  /** Voxel (i, j, k, 1) to RAS mm, 4x4 row-major, as nibabel and NIfTI sform expect. */
  readonly affine: readonly number[];
  readonly orientation: PhantomOrientation;
  /** `labelNames[v]` names label value v (TotalSegmentator-style names; index 0 is `background`). */
  readonly labelNames: readonly string[];
  readonly seed: number;
  readonly noiseSigma: number;
}

/** Options after defaults and validation. */
export interface ResolvedPhantomOptions {
  readonly size: readonly [number, number, number];
  readonly spacing: readonly [number, number, number];
  readonly seed: number;
  readonly noiseSigma: number;
  readonly orientation: PhantomOrientation;
}

/** Largest accepted grid in voxels (about 1 GiB of int16 + uint8 with headroom for NIfTI encoding). */
export const MAX_PHANTOM_VOXELS = 512 * 512 * 640;
const MAX_AXIS = 2048;
const DEFAULT_SIZE: readonly [number, number, number] = [256, 256, 64];

/** Applies defaults to {@link PhantomOptions} and validates every field (INVALID_ARGUMENT / RESOURCE_EXHAUSTED). */
export function resolvePhantomOptions(o: PhantomOptions = {}): ResolvedPhantomOptions {
  const size = o.size ?? DEFAULT_SIZE;
  if (size.length !== 3 || size.some((n) => !Number.isInteger(n) || n < 1 || n > MAX_AXIS)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `size must be 3 integers in 1..${MAX_AXIS}, got [${size.join(',')}]`,
    );
  }
  const voxels = size[0] * size[1] * size[2];
  if (voxels > MAX_PHANTOM_VOXELS) {
    throw new CuriaError(
      'RESOURCE_EXHAUSTED',
      `size ${size.join('x')} holds ${voxels} voxels, above the limit of ${MAX_PHANTOM_VOXELS}`,
    );
  }
  const inPlane = 409.6 / Math.max(size[0], size[1]);
  const spacing = o.spacing ?? ([inPlane, inPlane, 2.5] as const);
  if (spacing.length !== 3 || spacing.some((s) => !Number.isFinite(s) || s <= 0 || s > 100)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `spacing must be 3 numbers in (0, 100] mm, got [${spacing.join(',')}]`,
    );
  }
  const seed = o.seed ?? 1;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new CuriaError('INVALID_ARGUMENT', `seed must be an integer in 0..4294967295, got ${seed}`);
  }
  const noiseSigma = o.noiseSigma ?? 15;
  if (!Number.isFinite(noiseSigma) || noiseSigma < 0 || noiseSigma > 1000) {
    throw new CuriaError('INVALID_ARGUMENT', `noise sigma must be in 0..1000 HU, got ${noiseSigma}`);
  }
  const orientation = o.orientation ?? 'LPS';
  if (orientation !== 'LPS' && orientation !== 'RAS') {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `orientation must be 'LPS' or 'RAS', got '${String(orientation)}'`,
    );
  }
  return {
    size: [size[0], size[1], size[2]],
    spacing: [spacing[0], spacing[1], spacing[2]],
    seed,
    noiseSigma,
    orientation,
  };
}
