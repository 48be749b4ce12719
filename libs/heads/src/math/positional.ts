/**
 * Curia's sinusoidal slice-position embedding, [numSlices, dim] row-major:
 * `pe[p, 2j] = sin(p · f_j)`, `pe[p, 2j+1] = cos(p · f_j)`, `f_j = exp(2j · (−ln 10000 / dim))`.
 * `p` is the slice's index among the slices the head uses (0-based). Intermediate values are
 * rounded to float32 the way torch computes them, so long volumes keep parity.
 */
export function slicePositionalEmbedding(numSlices: number, dim: number): Float32Array {
  const pe = new Float32Array(numSlices * dim);
  const coef = Math.fround(-Math.log(10000) / dim);
  const half = Math.ceil(dim / 2);
  const freq = new Float32Array(half);
  for (let j = 0; j < half; j++) freq[j] = Math.fround(Math.exp(Math.fround(2 * j * coef)));
  for (let p = 0; p < numSlices; p++) {
    const o = p * dim;
    for (let j = 0; j < half; j++) {
      const arg = Math.fround(p * freq[j]!);
      pe[o + 2 * j] = Math.sin(arg);
      if (2 * j + 1 < dim) pe[o + 2 * j + 1] = Math.cos(arg);
    }
  }
  return pe;
}
