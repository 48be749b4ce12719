import { CuriaError, isCuriaError } from '@curia/errors';
import { gridCornerDistanceMm, openVolume, type AdmitVolume, type Volume } from '@curia/volume';

import type { StudyGrid } from './grid.js';

/** Largest distance (mm) allowed between a label map's voxel centres and its study's. */
export const LABEL_GRID_TOLERANCE_MM = 1e-3;

/** A label map read one canonical slice at a time. */
export interface LabelPlanes {
  /** Canonical slice `s` (rows × cols, row-major) as label values 0..255. */
  plane(s: number): Promise<Uint8Array>;
  /** Every label value present on canonical slice `s` (0 excluded). */
  valuesOn(s: number): Promise<Set<number>>;
}

/** A label map opened on its own, before its study's grid is known. */
export interface LabelMapFile extends LabelPlanes {
  /** The map's own grid. */
  readonly grid: StudyGrid;
  /** INVALID_ARGUMENT naming the field unless the map lies on `grid` (same dims, voxel centres within tolerance). */
  checkGrid(grid: StudyGrid): void;
}

/**
 * Opens a NIfTI label map (bytes, gzip allowed). INVALID_ARGUMENT names `field` for an unreadable
 * file or, when a plane is read, a voxel that is not an integer 0..255. `admit` sees what the map
 * decodes to from its header, before anything is inflated (a memory budget; it may throw).
 */
export async function readLabelMap(
  bytes: Uint8Array,
  field: string,
  signal?: AbortSignal,
  admit?: AdmitVolume,
): Promise<LabelMapFile> {
  let vol: Volume;
  try {
    vol = await openVolume(
      { kind: 'bytes', data: bytes, filename: 'labels.nii' },
      { signal, ...(admit ? { admit } : {}) },
    );
  } catch (e) {
    if (isCuriaError(e) && (e.code === 'CANCELLED' || e.code === 'RESOURCE_EXHAUSTED')) throw e;
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${field}: ${isCuriaError(e) ? e.message : 'not a readable NIfTI file'}`,
    );
  }
  const g = vol.geometry;
  const [slices, rows, cols] = g.canonicalDims;
  const plane = async (s: number): Promise<Uint8Array> => {
    if (!(Number.isInteger(s) && s >= 0 && s < slices)) {
      throw new CuriaError('INVALID_ARGUMENT', `${field}: canonical slice ${s} is outside 0..${slices - 1}`);
    }
    const v = await vol.readCanonicalSlice(s);
    const out = new Uint8Array(rows * cols);
    for (let i = 0; i < out.length; i++) {
      const x = v[i]!;
      if (!(Number.isInteger(x) && x >= 0 && x <= 255)) {
        throw new CuriaError(
          'INVALID_ARGUMENT',
          `${field} holds a voxel that is not an integer label 0..255`,
        );
      }
      out[i] = x;
    }
    return out;
  };
  return {
    grid: g,
    plane,
    valuesOn: async (s) => {
      const set = new Set<number>(await plane(s));
      set.delete(0);
      return set;
    },
    checkGrid: (grid) => {
      if (g.inputDims.some((d, a) => d !== grid.inputDims[a])) {
        throw new CuriaError(
          'INVALID_ARGUMENT',
          `${field} dims [${g.inputDims.join(', ')}] do not match the study's input grid dims [${grid.inputDims.join(', ')}]`,
        );
      }
      const worst = gridCornerDistanceMm(
        g.inputAffine,
        g.inputFrame,
        grid.inputAffine,
        grid.inputFrame,
        grid.inputDims,
      );
      if (!(worst <= LABEL_GRID_TOLERANCE_MM)) {
        throw new CuriaError(
          'INVALID_ARGUMENT',
          `${field} is not on the study's input grid: its voxel centres are up to ${worst.toPrecision(3)} mm away (tolerance ${LABEL_GRID_TOLERANCE_MM} mm)`,
        );
      }
    },
  };
}

/**
 * Opens a NIfTI label map (bytes, gzip allowed) and checks it lies on `grid`: same input dims and
 * voxel centres within {@link LABEL_GRID_TOLERANCE_MM}. INVALID_ARGUMENT names `field` for an
 * unreadable file, another grid, or a voxel that is not an integer 0..255; the study's
 * coordinates are never echoed.
 */
export async function openLabelMap(
  bytes: Uint8Array,
  grid: StudyGrid,
  field: string,
  signal?: AbortSignal,
): Promise<LabelPlanes> {
  const map = await readLabelMap(bytes, field, signal);
  map.checkGrid(grid);
  return map;
}
