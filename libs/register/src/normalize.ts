import { CuriaError } from '@curia/errors';
import { percentile } from '@curia/volume';

import type { GridField } from './field.js';

/** Imaging modality of an input (the contract's `Modality`, lower case). */
export type Modality = 'ct' | 'mr' | 'pet' | 'cbct' | 'other';

/** CT window mapped to [0, 1] (HU): air to dense bone. */
export const CT_WINDOW_HU: readonly [number, number] = [-1000, 1500];

/** Robust window of non-CT images: these percentiles (0..100) of the intensities map to 0 and 1. */
export const ROBUST_PERCENTILES: readonly [number, number] = [0.5, 99.5];

/** Most voxels the percentiles are estimated from (an even stride through the volume). */
const MAX_PERCENTILE_SAMPLES = 200_000;

/**
 * The intensity window [lo, hi] that {@link normalizeIntensities} maps to [0, 1]: {@link CT_WINDOW_HU}
 * for CT (calibrated Hounsfield units); for every other modality (MR, PET, CBCT, whose values are
 * not calibrated) the {@link ROBUST_PERCENTILES} of channel 0, estimated on an even subsample of at
 * most 200 000 voxels (linear-interpolated percentiles).
 */
export function intensityWindow(field: GridField, modality: Modality): [number, number] {
  if (modality === 'ct') return [CT_WINDOW_HU[0], CT_WINDOW_HU[1]];
  const n = field.data.length / field.channels;
  const stride = Math.max(1, Math.ceil(n / MAX_PERCENTILE_SAMPLES));
  const sample = new Float64Array(Math.ceil(n / stride));
  for (let i = 0, o = 0; i < n; i += stride) sample[o++] = field.data[i]!;
  return [percentile(sample, ROBUST_PERCENTILES[0]), percentile(sample, ROBUST_PERCENTILES[1])];
}

/**
 * Maps intensities to about [0, 1] for the modality: (v − lo) / (hi − lo) clipped to [0, 1], with
 * [lo, hi] from {@link intensityWindow}. A constant image (hi = lo) becomes all zeros. Every channel
 * uses channel 0's window. Returns a new field on the same grid.
 */
export function normalizeIntensities(field: GridField, modality: Modality): GridField {
  if (field.data.length === 0) throw new CuriaError('INVALID_ARGUMENT', 'cannot normalise an empty field');
  const [lo, hi] = intensityWindow(field, modality);
  const scale = hi > lo ? 1 / (hi - lo) : 0;
  const src = field.data;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const v = (src[i]! - lo) * scale;
    out[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
  return { grid: field.grid, channels: field.channels, data: out };
}
