/*
 * Separable box filters on channel-major 3-D fields (NIfTI order), normalised at the borders: every
 * output is the mean of the in-bounds inputs of its (2r+1)³ window, which is what ONNX AveragePool
 * computes with count_include_pad = 0. The adjoint is provided for exact gradients through a
 * smoothing reparameterisation. Private to the optimisers.
 */

/** A float array of either precision. */
export type FloatArray = Float32Array | Float64Array;

type Dims = readonly [number, number, number];

/** Normalised 1-D box of radius r along `axis` of one channel volume at `off`, in place. */
function boxAxis(
  data: FloatArray,
  off: number,
  dims: Dims,
  axis: 0 | 1 | 2,
  r: number,
  adjoint: boolean,
  line: Float64Array,
  inv: Float64Array,
): void {
  const [nx, ny, nz] = dims;
  const n = dims[axis];
  const stride = axis === 0 ? 1 : axis === 1 ? nx : nx * ny;
  // Lines along `axis` start at every voxel whose coordinate along `axis` is 0.
  const [ua, ub, sa, sb] =
    axis === 0 ? [ny, nz, nx, nx * ny] : axis === 1 ? [nx, nz, 1, nx * ny] : [nx, ny, 1, nx];
  for (let b = 0; b < ub; b++) {
    for (let a = 0; a < ua; a++) {
      const o = off + a * sa + b * sb;
      if (adjoint) for (let i = 0; i < n; i++) line[i] = data[o + i * stride]! * inv[i]!;
      else for (let i = 0; i < n; i++) line[i] = data[o + i * stride]!;
      // Running window sum over [i − r, i + r] ∩ [0, n).
      let sum = 0;
      for (let i = 0; i < Math.min(r, n); i++) sum += line[i]!;
      for (let i = 0; i < n; i++) {
        if (i + r < n) sum += line[i + r]!;
        if (i - r - 1 >= 0) sum -= line[i - r - 1]!;
        data[o + i * stride] = adjoint ? sum : sum * inv[i]!;
      }
    }
  }
}

/** The same filter for r = 1 along x (contiguous rows of length nx), in place. */
function box3X(data: FloatArray, off: number, nx: number, rows: number, adjoint: boolean): void {
  if (nx <= 1) return;
  const end = 0.5;
  const mid = 1 / 3;
  for (let r = 0, o = off; r < rows; r++, o += nx) {
    if (nx === 2) {
      const s = (data[o]! + data[o + 1]!) * end;
      data[o] = s;
      data[o + 1] = s;
      continue;
    }
    // Adjoint: scale the inputs by their window's 1/count, then sum; forward: sum, then scale.
    const a0 = adjoint ? end : 1;
    const am = adjoint ? mid : 1;
    const o0 = adjoint ? 1 : end;
    const om = adjoint ? 1 : mid;
    let p = data[o]! * a0;
    let c = data[o + 1]! * am;
    data[o] = (p + c) * o0;
    for (let i = 1; i < nx - 1; i++) {
      const q = data[o + i + 1]! * (i + 1 === nx - 1 ? a0 : am);
      data[o + i] = (p + c + q) * om;
      p = c;
      c = q;
    }
    data[o + nx - 1] = (p + c) * o0;
  }
}

/**
 * The same filter for r = 1 along y or z, row-vectorised: `count` rows of length `rowLen` spaced
 * `step` apart per line, `lines` lines spaced `lineStep` apart, in place.
 */
function box3Rows(
  data: FloatArray,
  off: number,
  rowLen: number,
  step: number,
  count: number,
  lines: number,
  lineStep: number,
  adjoint: boolean,
  prev: Float64Array,
): void {
  if (count <= 1) return;
  const end = 0.5;
  const mid = 1 / 3;
  const scaleIn = (j: number): number => (adjoint ? (j === 0 || j === count - 1 ? end : mid) : 1);
  const scaleOut = (j: number): number => (adjoint ? 1 : j === 0 || j === count - 1 ? end : mid);
  for (let l = 0; l < lines; l++) {
    const base = off + l * lineStep;
    // prev holds the scaled original row j − 1 (row j − 1 is overwritten by then).
    {
      const si0 = scaleIn(0);
      const si1 = scaleIn(1);
      const so = scaleOut(0);
      for (let i = 0; i < rowLen; i++) {
        const c = data[base + i]! * si0;
        prev[i] = c;
        data[base + i] = (c + data[base + step + i]! * si1) * so;
      }
    }
    for (let j = 1; j < count - 1; j++) {
      const o = base + j * step;
      const sc = scaleIn(j);
      const sn = scaleIn(j + 1);
      const so = scaleOut(j);
      for (let i = 0; i < rowLen; i++) {
        const c = data[o + i]! * sc;
        data[o + i] = (prev[i]! + c + data[o + step + i]! * sn) * so;
        prev[i] = c;
      }
    }
    {
      const o = base + (count - 1) * step;
      const sc = scaleIn(count - 1);
      const so = scaleOut(count - 1);
      for (let i = 0; i < rowLen; i++) data[o + i] = (prev[i]! + data[o + i]! * sc) * so;
    }
  }
}

/**
 * Normalised (2r+1)³ box filter of every channel, `passes` times, in place. With `adjoint` it applies
 * the transpose of that linear map instead (for gradients).
 */
export function boxSmooth(
  data: FloatArray,
  channels: number,
  dims: Dims,
  radius = 1,
  passes = 1,
  adjoint = false,
): FloatArray {
  const [nx, ny, nz] = dims;
  const nvox = nx * ny * nz;
  const maxN = Math.max(nx, ny, nz);
  const line = new Float64Array(maxN);
  const invs = dims.map((n) => {
    const inv = new Float64Array(n);
    for (let i = 0; i < n; i++) inv[i] = 1 / (Math.min(n - 1, i + radius) - Math.max(0, i - radius) + 1);
    return inv;
  });
  const prev = radius === 1 ? new Float64Array(nx * ny) : line;
  if (radius <= 0) return data;
  for (let p = 0; p < passes; p++) {
    for (let c = 0; c < channels; c++) {
      const off = c * nvox;
      if (radius === 1) {
        box3X(data, off, nx, ny * nz, adjoint);
        box3Rows(data, off, nx, nx, ny, nz, nx * ny, adjoint, prev);
        box3Rows(data, off, nx * ny, nx * ny, nz, 1, 0, adjoint, prev);
      } else {
        if (nx > 1) boxAxis(data, off, dims, 0, radius, adjoint, line, invs[0]!);
        if (ny > 1) boxAxis(data, off, dims, 1, radius, adjoint, line, invs[1]!);
        if (nz > 1) boxAxis(data, off, dims, 2, radius, adjoint, line, invs[2]!);
      }
    }
  }
  return data;
}
