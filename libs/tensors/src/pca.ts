/**
 * The top `p` principal directions of centred rows (N × D, row-major) by subspace iteration on the
 * covariance: a D × p matrix (column-major per direction: direction c at [c·D, (c+1)·D)) with
 * orthonormal columns. Deterministic (fixed start).
 */
export function principalDirections(
  x: Float32Array,
  rows: number,
  dim: number,
  p: number,
  iterations = 30,
): Float64Array {
  const cov = new Float64Array(dim * dim);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    for (let i = 0; i < dim; i++) {
      const xi = x[o + i]!;
      if (xi === 0) continue;
      const ci = i * dim;
      for (let j = i; j < dim; j++) cov[ci + j]! += xi * x[o + j]!;
    }
  }
  for (let i = 0; i < dim; i++) for (let j = 0; j < i; j++) cov[i * dim + j] = cov[j * dim + i]!;
  const q = new Float64Array(dim * p);
  for (let c = 0; c < p; c++)
    for (let i = 0; i < dim; i++) q[c * dim + i] = Math.sin(1 + i * (c + 1) * 0.7071) + (i === c ? 1 : 0);
  orthonormalise(q, dim, p);
  const next = new Float64Array(dim * p);
  for (let it = 0; it < iterations; it++) {
    next.fill(0);
    for (let c = 0; c < p; c++) {
      const v = c * dim;
      for (let i = 0; i < dim; i++) {
        let s = 0;
        const ci = i * dim;
        for (let j = 0; j < dim; j++) s += cov[ci + j]! * q[v + j]!;
        next[v + i] = s;
      }
    }
    q.set(next);
    orthonormalise(q, dim, p);
  }
  return q;
}

/** Modified Gram-Schmidt on p column vectors of length dim (stored one after the other). */
function orthonormalise(q: Float64Array, dim: number, p: number): void {
  for (let c = 0; c < p; c++) {
    const v = c * dim;
    for (let b = 0; b < c; b++) {
      const u = b * dim;
      let dot = 0;
      for (let i = 0; i < dim; i++) dot += q[v + i]! * q[u + i]!;
      for (let i = 0; i < dim; i++) q[v + i]! -= dot * q[u + i]!;
    }
    let norm = 0;
    for (let i = 0; i < dim; i++) norm += q[v + i]! * q[v + i]!;
    norm = Math.sqrt(norm) || 1;
    for (let i = 0; i < dim; i++) q[v + i]! /= norm;
  }
}
