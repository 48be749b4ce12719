/**
 * The interpolation kernels of the engine (internal: not exported from the package). Both walk `n`
 * continuous voxel positions (x, y, z) of one output row, with no allocation and no calls per voxel.
 * A position is inside a grid of n voxels along an axis when −0.5 ≤ c ≤ n − 0.5 (the voxel
 * footprint, as ITK's `IsInsideBuffer`); in the outer half voxel the border value is used.
 */

/**
 * Trilinear samples of the `channels`-channel volume `src` (dims `dims`) at the `n` continuous voxel
 * positions (x, y, z), written to `out[c·outStride + outBase + t]`. `clamp` extends the border
 * values to every position (used for displacement fields); otherwise positions outside the footprint
 * get `fill` (and `valid[outBase + t] = 0` when a mask is given; 1 for the others).
 */
export function trilinearRow(
  src: Float32Array,
  dims: readonly [number, number, number],
  channels: number,
  x: Float64Array,
  y: Float64Array,
  z: Float64Array,
  n: number,
  out: Float32Array,
  outBase: number,
  outStride: number,
  clamp: boolean,
  fill: number,
  valid: Uint8Array | undefined,
): void {
  const nx = dims[0];
  const ny = dims[1];
  const nz = dims[2];
  const sN = nx * ny * nz;
  const dx = nx > 1 ? 1 : 0;
  const dy = ny > 1 ? nx : 0;
  const dz = nz > 1 ? nx * ny : 0;
  const hx = nx - 0.5;
  const hy = ny - 0.5;
  const hz = nz - 0.5;
  const tx = nx - 1;
  const ty = ny - 1;
  const tz = nz - 1;
  // Highest lower corner: the upper neighbour must exist (0 along an axis of one voxel).
  const mx = nx > 1 ? nx - 2 : 0;
  const my = ny > 1 ? ny - 2 : 0;
  const mz = nz > 1 ? nz - 2 : 0;
  for (let t = 0; t < n; t++) {
    let cx = x[t]!;
    let cy = y[t]!;
    let cz = z[t]!;
    if (!clamp && !(cx >= -0.5 && cx <= hx && cy >= -0.5 && cy <= hy && cz >= -0.5 && cz <= hz)) {
      for (let c = 0; c < channels; c++) out[c * outStride + outBase + t] = fill;
      if (valid !== undefined) valid[outBase + t] = 0;
      continue;
    }
    cx = cx < 0 ? 0 : cx > tx ? tx : cx;
    cy = cy < 0 ? 0 : cy > ty ? ty : cy;
    cz = cz < 0 ? 0 : cz > tz ? tz : cz;
    // Non-negative after clamping: truncation is the floor.
    let x0 = cx | 0;
    let y0 = cy | 0;
    let z0 = cz | 0;
    if (x0 > mx) x0 = mx;
    if (y0 > my) y0 = my;
    if (z0 > mz) z0 = mz;
    const fx = cx - x0;
    const fy = cy - y0;
    const fz = cz - z0;
    let b = x0 + nx * (y0 + ny * z0);
    let o = outBase + t;
    for (let c = 0; c < channels; c++, b += sN, o += outStride) {
      const v000 = src[b]!;
      const v100 = src[b + dx]!;
      const v010 = src[b + dy]!;
      const v110 = src[b + dx + dy]!;
      const v001 = src[b + dz]!;
      const v101 = src[b + dx + dz]!;
      const v011 = src[b + dy + dz]!;
      const v111 = src[b + dx + dy + dz]!;
      const a00 = v000 + (v100 - v000) * fx;
      const a10 = v010 + (v110 - v010) * fx;
      const a01 = v001 + (v101 - v001) * fx;
      const a11 = v011 + (v111 - v011) * fx;
      const b0 = a00 + (a10 - a00) * fy;
      const b1 = a01 + (a11 - a01) * fy;
      out[o] = b0 + (b1 - b0) * fz;
    }
    if (valid !== undefined) valid[outBase + t] = 1;
  }
}

/** Nearest-neighbour samples of a label map at the `n` positions (x, y, z); outside the footprint → `fill`. */
export function nearestRow(
  src: Uint8Array | Uint16Array,
  dims: readonly [number, number, number],
  x: Float64Array,
  y: Float64Array,
  z: Float64Array,
  n: number,
  out: Uint8Array | Uint16Array,
  outBase: number,
  fill: number,
): void {
  const nx = dims[0];
  const ny = dims[1];
  const nz = dims[2];
  for (let t = 0; t < n; t++) {
    const cx = x[t]!;
    const cy = y[t]!;
    const cz = z[t]!;
    if (!(cx >= -0.5 && cx <= nx - 0.5 && cy >= -0.5 && cy <= ny - 0.5 && cz >= -0.5 && cz <= nz - 0.5)) {
      out[outBase + t] = fill;
      continue;
    }
    const i = Math.min(nx - 1, Math.floor(cx + 0.5));
    const j = Math.min(ny - 1, Math.floor(cy + 0.5));
    const k = Math.min(nz - 1, Math.floor(cz + 0.5));
    out[outBase + t] = src[i + nx * (j + ny * k)]!;
  }
}

/** The positions m·(t, j, k, 1), t = 0…n−1, of one grid row through the affine `m` (row-major 4×4). */
export function affineRow(
  m: readonly number[],
  j: number,
  k: number,
  n: number,
  x: Float64Array,
  y: Float64Array,
  z: Float64Array,
): void {
  const bx = m[1]! * j + m[2]! * k + m[3]!;
  const by = m[5]! * j + m[6]! * k + m[7]!;
  const bz = m[9]! * j + m[10]! * k + m[11]!;
  const sx = m[0]!;
  const sy = m[4]!;
  const sz = m[8]!;
  for (let t = 0; t < n; t++) {
    x[t] = bx + sx * t;
    y[t] = by + sy * t;
    z[t] = bz + sz * t;
  }
}
