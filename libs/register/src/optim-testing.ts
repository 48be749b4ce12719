import { mulberry32 } from '@curia/tensors';

import type { Grid, GridField } from './field.js';
import { gridToWorld } from './grid.js';
import { boxSmooth } from './optim-smooth.js';

/*
 * Synthetic problems for the optimisers' tests and benchmark (not exported from the package):
 * seeded smooth random multi-channel volumes inside a soft "body" and smooth random displacements
 * (see also `testing.ts`).
 */

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
  const world = (i: number, j: number, k: number): [number, number, number] => gridToWorld(grid, [i, j, k]);
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
