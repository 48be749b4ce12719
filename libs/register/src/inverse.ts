import { CuriaError } from '@curia/errors';

import { voxelCount, type GridField } from './field.js';
import { gridSpacing, invert } from './grid.js';
import { trilinearRow } from './interpolate.js';

/** Options of {@link invertDisplacement}. */
export interface InverseOptions {
  /** Most fixed-point iterations. Default 50. */
  readonly maxIterations?: number;
  /** Stop once no component changes by more than this (voxels of the grid's finest axis). Default 1e-3. */
  readonly tolerance?: number;
}

/** The inverse field and how the iteration ended. */
export interface InverseResult {
  /** w on the same grid: y ↦ y + w(y) inverts x ↦ x + v(x). */
  readonly field: GridField;
  readonly iterations: number;
  /** Largest change of the last iteration (voxels of the finest axis). */
  readonly lastChange: number;
}

/**
 * Inverse of a displacement field v (3 channels, LPS mm; T(x) = x + v(x)) on its own grid, by the
 * fixed-point iteration w ← −v(y + w(y)) from w = 0 (v sampled trilinearly, border values extended).
 * Then T(y + w(y)) = y: w is the displacement of T⁻¹. Converges when v is a contraction (its largest
 * Jacobian norm below 1, i.e. a smooth field without folding); near the grid border the extension of
 * v makes the inverse approximate.
 */
export function invertDisplacement(v: GridField, options: InverseOptions = {}): InverseResult {
  const n = voxelCount(v.grid);
  if (v.channels !== 3 || v.data.length !== 3 * n) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      'a displacement field has 3 channels of one value per grid voxel',
    );
  }
  const maxIterations = options.maxIterations ?? 50;
  const tolerance = options.tolerance ?? 1e-3;
  const finest = Math.min(...gridSpacing(v.grid));
  const b = invert(v.grid.affine); // world vector → voxel-index vector (linear part)
  const [nx, ny, nz] = v.grid.dims;
  let w = new Float32Array(3 * n);
  let next = new Float32Array(3 * n);
  const x = new Float64Array(nx);
  const y = new Float64Array(nx);
  const z = new Float64Array(nx);
  let iterations = 0;
  let change = Infinity;
  while (iterations < maxIterations && change > tolerance) {
    for (let k = 0; k < nz; k++)
      for (let j = 0; j < ny; j++) {
        const base = nx * (j + ny * k);
        for (let i = 0; i < nx; i++) {
          const p = base + i;
          const w0 = w[p]!;
          const w1 = w[n + p]!;
          const w2 = w[2 * n + p]!;
          x[i] = i + b[0]! * w0 + b[1]! * w1 + b[2]! * w2;
          y[i] = j + b[4]! * w0 + b[5]! * w1 + b[6]! * w2;
          z[i] = k + b[8]! * w0 + b[9]! * w1 + b[10]! * w2;
        }
        trilinearRow(v.data, v.grid.dims, 3, x, y, z, nx, next, base, n, true, 0, undefined);
      }
    let worst = 0;
    for (let q = 0; q < 3 * n; q++) {
      const u = -next[q]!;
      next[q] = u;
      const d = Math.abs(u - w[q]!);
      if (d > worst) worst = d;
    }
    [w, next] = [next, w];
    change = worst / finest;
    iterations++;
  }
  return { field: { grid: v.grid, channels: 3, data: w }, iterations, lastChange: change };
}
