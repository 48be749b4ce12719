import { mulberry32 } from '@curia/tensors';

import { voxelCount, type Grid, type GridField, type Mat4 } from './field.js';
import { worldToVoxelDisplacement } from './optim-fields.js';
import { boxSmooth } from './optim-smooth.js';

/*
 * Synthetic problems for the optimisers' tests and benchmark (not exported from the package):
 * seeded smooth random multi-channel volumes inside a soft "body", isotropic LPS grids, and a
 * private Jacobian summary of displacement fields (the shared jacobian module replaces it at merge).
 */

/** An axis-aligned grid of `spacing` mm whose first voxel sits at `origin`. */
export function isoGrid(dims: readonly [number, number, number], spacing: number, origin = [0, 0, 0]): Grid {
  return {
    dims,
    affine: [spacing, 0, 0, origin[0]!, 0, spacing, 0, origin[1]!, 0, 0, spacing, origin[2]!, 0, 0, 0, 1],
  };
}

/**
 * A smooth random volume: `channels` independent seeded noise fields smoothed by box passes of
 * `radius` voxels, each scaled to unit standard deviation, multiplied by a soft ellipsoidal body
 * filling ~80 % of the grid (0 outside), plus a constant 0.5 inside the body in channel 0 so the
 * content has a centre of mass.
 */
export function smoothRandomVolume(
  grid: Grid,
  channels: number,
  seed: number,
  radius = 2,
  passes = 3,
): GridField {
  const [nx, ny, nz] = grid.dims;
  const n = nx * ny * nz;
  const rnd = mulberry32(seed);
  const data = new Float32Array(channels * n);
  for (let i = 0; i < data.length; i++) data[i] = rnd() * 2 - 1;
  boxSmooth(data, channels, grid.dims, radius, passes);
  for (let c = 0; c < channels; c++) {
    let s2 = 0;
    for (let v = c * n; v < (c + 1) * n; v++) s2 += data[v]! ** 2;
    const inv = 1 / Math.sqrt(s2 / n || 1);
    for (let v = c * n; v < (c + 1) * n; v++) data[v]! *= inv;
  }
  for (let k = 0, v = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, v++) {
        const q =
          ((i - (nx - 1) / 2) / (0.4 * nx)) ** 2 +
          ((j - (ny - 1) / 2) / (0.4 * ny)) ** 2 +
          ((k - (nz - 1) / 2) / (0.4 * nz)) ** 2;
        const body = 1 / (1 + Math.exp((Math.sqrt(q) - 1) * 12));
        for (let c = 0; c < channels; c++) data[c * n + v] = body * (data[c * n + v]! + (c === 0 ? 0.5 : 0));
      }
    }
  }
  return { grid, channels, data };
}

/** A smooth random displacement (mm, LPS) on `grid`: a sum of Gaussian bumps of random vectors. */
export function randomSmoothDisplacement(
  grid: Grid,
  seed: number,
  opts: { bumps: number; amplitudeMm: number; sigmaMm: number },
): GridField {
  const rnd = mulberry32(seed);
  const [nx, ny, nz] = grid.dims;
  const n = nx * ny * nz;
  const a = grid.affine;
  const world = (i: number, j: number, k: number): [number, number, number] => [
    a[0]! * i + a[1]! * j + a[2]! * k + a[3]!,
    a[4]! * i + a[5]! * j + a[6]! * k + a[7]!,
    a[8]! * i + a[9]! * j + a[10]! * k + a[11]!,
  ];
  const bumps = Array.from({ length: opts.bumps }, () => {
    const c = world(
      (0.2 + 0.6 * rnd()) * (nx - 1),
      (0.2 + 0.6 * rnd()) * (ny - 1),
      (0.2 + 0.6 * rnd()) * (nz - 1),
    );
    const d = [rnd() * 2 - 1, rnd() * 2 - 1, rnd() * 2 - 1];
    const len = Math.hypot(d[0]!, d[1]!, d[2]!) || 1;
    return { c, d: d.map((x) => (x / len) * opts.amplitudeMm * (0.5 + 0.5 * rnd())) };
  });
  const data = new Float32Array(3 * n);
  const inv2s2 = 1 / (2 * opts.sigmaMm ** 2);
  for (let k = 0, v = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, v++) {
        const p = world(i, j, k);
        for (const b of bumps) {
          const g = Math.exp(-((p[0] - b.c[0]) ** 2 + (p[1] - b.c[1]) ** 2 + (p[2] - b.c[2]) ** 2) * inv2s2);
          for (let c = 0; c < 3; c++) data[c * n + v]! += g * b.d[c]!;
        }
      }
    }
  }
  return { grid, channels: 3, data };
}

/** Jacobian summary of x ↦ x + u(x): min determinant, fraction of voxels with det ≤ 0, SD of log det. */
export interface JacobianSummary {
  readonly minDet: number;
  readonly foldingFraction: number;
  readonly sdLogJ: number;
}

/** {@link JacobianSummary} of a displacement field (central differences, one-sided at the edges). */
export function jacobianSummary(u: GridField): JacobianSummary {
  const d = worldToVoxelDisplacement(u);
  const [nx, ny, nz] = u.grid.dims;
  const n = voxelCount(u.grid);
  const deriv = (c: number, v: number, i: number, size: number, stride: number): number => {
    if (size < 2) return 0;
    if (i === 0) return d[c * n + v + stride]! - d[c * n + v]!;
    if (i === size - 1) return d[c * n + v]! - d[c * n + v - stride]!;
    return 0.5 * (d[c * n + v + stride]! - d[c * n + v - stride]!);
  };
  let minDet = Infinity;
  let folds = 0;
  let s = 0;
  let s2 = 0;
  let count = 0;
  for (let k = 0, v = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, v++) {
        const m: number[] = [];
        for (let c = 0; c < 3; c++) {
          m.push(
            (c === 0 ? 1 : 0) + deriv(c, v, i, nx, 1),
            (c === 1 ? 1 : 0) + deriv(c, v, j, ny, nx),
            (c === 2 ? 1 : 0) + deriv(c, v, k, nz, nx * ny),
          );
        }
        const det =
          m[0]! * (m[4]! * m[8]! - m[5]! * m[7]!) -
          m[1]! * (m[3]! * m[8]! - m[5]! * m[6]!) +
          m[2]! * (m[3]! * m[7]! - m[4]! * m[6]!);
        minDet = Math.min(minDet, det);
        if (det <= 0) folds++;
        else {
          const l = Math.log(det);
          s += l;
          s2 += l * l;
          count++;
        }
      }
    }
  }
  const mean = count > 0 ? s / count : 0;
  return {
    minDet,
    foldingFraction: folds / n,
    sdLogJ: count > 0 ? Math.sqrt(Math.max(s2 / count - mean * mean, 0)) : 0,
  };
}

/** Mean Euclidean distance (mm) between two displacement fields on one grid, over voxels where `mask` ≠ 0. */
export function meanEndpointError(a: GridField, b: GridField, mask?: Float32Array): number {
  const n = voxelCount(a.grid);
  let s = 0;
  let count = 0;
  for (let v = 0; v < n; v++) {
    if (mask && mask[v] === 0) continue;
    s += Math.hypot(
      a.data[v]! - b.data[v]!,
      a.data[n + v]! - b.data[n + v]!,
      a.data[2 * n + v]! - b.data[2 * n + v]!,
    );
    count++;
  }
  return count > 0 ? s / count : 0;
}

/** The world position of voxel (i, j, k) of `affine`. */
export function voxelToWorld(affine: Mat4, i: number, j: number, k: number): [number, number, number] {
  return [
    affine[0]! * i + affine[1]! * j + affine[2]! * k + affine[3]!,
    affine[4]! * i + affine[5]! * j + affine[6]! * k + affine[7]!,
    affine[8]! * i + affine[9]! * j + affine[10]! * k + affine[11]!,
  ];
}
