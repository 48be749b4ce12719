/**
 * Dense row-major kernels on Float32Array. Weights follow torch `nn.Linear` layout:
 * `W` is [out, in], so every output is a dot product of two contiguous rows.
 */

/** Dot product of `n` values of `a` from `ao` and `b` from `bo` (4-way unrolled). */
export function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    s0 += a[ao + i]! * b[bo + i]!;
    s1 += a[ao + i + 1]! * b[bo + i + 1]!;
    s2 += a[ao + i + 2]! * b[bo + i + 2]!;
    s3 += a[ao + i + 3]! * b[bo + i + 3]!;
  }
  for (; i < n; i++) s0 += a[ao + i]! * b[bo + i]!;
  return s0 + s1 + s2 + s3;
}

/**
 * Four dot products sharing every load of `b`: `out[oo + k] = Σᵢ a[a0 + k·stride + i] · b[bo + i]`
 * for k = 0..3 and i < n.
 */
export function dot4(
  a: Float32Array,
  a0: number,
  stride: number,
  b: Float32Array,
  bo: number,
  n: number,
  out: Float64Array,
  oo: number,
): void {
  const a1 = a0 + stride;
  const a2 = a1 + stride;
  const a3 = a2 + stride;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  for (let i = 0; i < n; i++) {
    const v = b[bo + i]!;
    s0 += a[a0 + i]! * v;
    s1 += a[a1 + i]! * v;
    s2 += a[a2 + i]! * v;
    s3 += a[a3 + i]! * v;
  }
  out[oo] = s0;
  out[oo + 1] = s1;
  out[oo + 2] = s2;
  out[oo + 3] = s3;
}

const sums = new Float64Array(4);

/**
 * `out[r, o] = bias[o] + x[r, :] · w[wRow0 + o, :]` for `rows` rows of `inDim` values: a torch
 * Linear using rows `wRow0 .. wRow0 + outDim` of `w` (so one packed in_proj can be split).
 */
export function linear(
  x: Float32Array,
  rows: number,
  inDim: number,
  w: Float32Array,
  bias: Float32Array | null,
  outDim: number,
  out: Float32Array = new Float32Array(rows * outDim),
  wRow0 = 0,
): Float32Array {
  for (let r = 0; r < rows; r++) {
    const xo = r * inDim;
    const oo = r * outDim;
    let o = 0;
    for (; o + 3 < outDim; o += 4) {
      dot4(w, (wRow0 + o) * inDim, inDim, x, xo, inDim, sums, 0);
      for (let k = 0; k < 4; k++) out[oo + o + k] = (bias ? bias[wRow0 + o + k]! : 0) + sums[k]!;
    }
    for (; o < outDim; o++) {
      out[oo + o] = (bias ? bias[wRow0 + o]! : 0) + dot(x, xo, w, (wRow0 + o) * inDim, inDim);
    }
  }
  return out;
}

/** In-place LayerNorm over the last dimension (biased variance, as torch). */
export function layerNormRows(
  x: Float32Array,
  rows: number,
  dim: number,
  gamma: Float32Array,
  beta: Float32Array,
  eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[o + i]!;
    mean /= dim;
    let v = 0;
    for (let i = 0; i < dim; i++) {
      const d = x[o + i]! - mean;
      v += d * d;
    }
    const inv = 1 / Math.sqrt(v / dim + eps);
    for (let i = 0; i < dim; i++) x[o + i] = (x[o + i]! - mean) * inv * gamma[i]! + beta[i]!;
  }
}

/** Row-wise softmax of a [rows, cols] matrix into a new array. */
export function softmaxRows(logits: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, logits[o + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) {
      const e = Math.exp(logits[o + c]! - m);
      out[o + c] = e;
      s += e;
    }
    for (let c = 0; c < cols; c++) out[o + c] = out[o + c]! / s;
  }
  return out;
}

/** Numerically stable logistic function. */
export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}
