import { CuriaError } from '@curia/errors';
import type { Volume } from '@curia/volume';

import type { Phantom } from './options.js';

/**
 * One axial slice in RADIOLOGICAL display order: row-major, row 0 at the top = most anterior,
 * column 0 at the left = the patient's RIGHT (as if looking up from the patient's feet).
 * This is also the Curia canonical slice layout (rows -> Posterior, columns -> Left).
 */
export interface DisplaySlice {
  readonly width: number;
  readonly height: number;
  /** Hounsfield units (or any scalar), `width * height` values. */
  readonly values: ArrayLike<number>;
  /** Optional label per pixel (0 = none), same layout. */
  readonly labels?: ArrayLike<number>;
}

/** `count` slice indices spread evenly over `n` slices (centres of equal bins), ascending and distinct. */
export function evenSliceIndices(n: number, count: number): number[] {
  const k = Math.min(n, Math.max(1, Math.floor(count)));
  return Array.from({ length: k }, (_, t) => Math.min(n - 1, Math.floor(((t + 0.5) * n) / k)));
}

/** Axial slice k (0 = most inferior) of a phantom in radiological display order. */
export function phantomDisplaySlice(p: Phantom, k: number): DisplaySlice {
  const [nx, ny, nz] = p.dims;
  if (!Number.isInteger(k) || k < 0 || k >= nz) {
    throw new CuriaError('OUT_OF_RANGE', `slice ${k} is outside 0..${nz - 1}`);
  }
  const plane = nx * ny;
  const values = p.data.subarray(k * plane, (k + 1) * plane);
  const labels = p.labels.subarray(k * plane, (k + 1) * plane);
  // LPS storage is already display order; RAS storage has both in-plane axes reversed.
  if (p.orientation === 'LPS') return { width: nx, height: ny, values, labels };
  return { width: nx, height: ny, values: values.slice().reverse(), labels: labels.slice().reverse() };
}

/**
 * Canonical slice k of an opened volume (and of a label volume on the same grid) in radiological
 * display order; `openVolume`'s canonical slices are already laid out that way.
 */
export async function volumeDisplaySlice(vol: Volume, k: number, labelVol?: Volume): Promise<DisplaySlice> {
  const [, rows, cols] = vol.geometry.canonicalDims;
  const values = await vol.readCanonicalSlice(k);
  if (!labelVol) return { width: cols, height: rows, values };
  const lab = await labelVol.readCanonicalSlice(k);
  const labels = new Uint8Array(lab.length);
  for (let i = 0; i < lab.length; i++) labels[i] = Math.min(255, Math.max(0, Math.round(lab[i]!)));
  return { width: cols, height: rows, values, labels };
}
