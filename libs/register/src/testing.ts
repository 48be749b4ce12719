// Test helpers for the engine's tests (not exported from the package).
import { mulberry32 } from '@curia/tensors';

import { voxelCount, type Grid, type GridField } from './field.js';
import { applyPoint, type Vec3 } from './grid.js';

/** A field whose channel c at voxel x is `fn(world(x), c)`. */
export function fieldFrom(grid: Grid, channels: number, fn: (p: Vec3, c: number) => number): GridField {
  const n = voxelCount(grid);
  const data = new Float32Array(n * channels);
  const [nx, ny, nz] = grid.dims;
  for (let k = 0, q = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, q++) {
        const p = applyPoint(grid.affine, [i, j, k]);
        for (let c = 0; c < channels; c++) data[c * n + q] = fn(p, c);
      }
  return { grid, channels, data };
}

/**
 * A smooth displacement (mm): per component a sum of 3 sinusoids of wavelength ≥ `wavelengthMm` with
 * random directions and phases, scaled to amplitude `amplitudeMm`. Its gradient is at most about
 * 3·2π·amplitude/wavelength.
 */
export function smoothDisplacement(
  grid: Grid,
  amplitudeMm: number,
  wavelengthMm: number,
  seed: number,
): GridField {
  const rand = mulberry32(seed);
  const waves = Array.from({ length: 9 }, () => {
    const dir = [rand() - 0.5, rand() - 0.5, rand() - 0.5];
    const norm = Math.hypot(...dir);
    const k = (2 * Math.PI) / (wavelengthMm * (1 + rand()));
    return { dir: dir.map((d) => (d / norm) * k), phase: rand() * 2 * Math.PI };
  });
  return fieldFrom(grid, 3, (p, c) => {
    let s = 0;
    for (let w = 0; w < 3; w++) {
      const { dir, phase } = waves[3 * c + w]!;
      s += Math.sin(dir[0]! * p[0] + dir[1]! * p[1] + dir[2]! * p[2] + phase);
    }
    return (amplitudeMm / 3) * s;
  });
}

/** Uniform random values in [0, 1) on a grid. */
export function randomField(grid: Grid, seed: number, channels = 1): GridField {
  const rand = mulberry32(seed);
  const data = new Float32Array(voxelCount(grid) * channels);
  for (let i = 0; i < data.length; i++) data[i] = rand();
  return { grid, channels, data };
}

/** An affine grid rotated about z by `deg` with spacings `sp` and origin `t` (LPS mm). */
export function obliqueGrid(dims: Vec3, deg: number, sp: Vec3, t: Vec3): Grid {
  const c = Math.cos((deg * Math.PI) / 180);
  const s = Math.sin((deg * Math.PI) / 180);
  return {
    dims,
    affine: [c * sp[0], -s * sp[1], 0, t[0], s * sp[0], c * sp[1], 0, t[1], 0, 0, sp[2], t[2], 0, 0, 0, 1],
  };
}
