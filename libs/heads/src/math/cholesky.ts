/**
 * In-place Cholesky factorisation of a symmetric positive-definite n×n matrix (row-major,
 * Float64Array): the lower triangle is overwritten with L such that A = L Lᵀ.
 * Returns false when the matrix is not positive definite.
 */
export function choleskyInPlace(a: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    const jo = j * n;
    let d = a[jo + j]!;
    for (let k = 0; k < j; k++) d -= a[jo + k]! * a[jo + k]!;
    if (!(d > 0) || !Number.isFinite(d)) return false;
    const ljj = Math.sqrt(d);
    a[jo + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      const io = i * n;
      let s = a[io + j]!;
      for (let k = 0; k < j; k++) s -= a[io + k]! * a[jo + k]!;
      a[io + j] = s / ljj;
    }
  }
  return true;
}

/** Solves L Lᵀ x = b given the factor from {@link choleskyInPlace}; returns x. */
export function choleskySolve(l: Float64Array, n: number, b: Float64Array): Float64Array {
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i]!;
    const io = i * n;
    for (let k = 0; k < i; k++) s -= l[io + k]! * y[k]!;
    y[i] = s / l[io + i]!;
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i]!;
    for (let k = i + 1; k < n; k++) s -= l[k * n + i]! * x[k]!;
    x[i] = s / l[i * n + i]!;
  }
  return x;
}

/**
 * Solves the SPD system A x = b, adding a growing ridge to the diagonal if A is numerically
 * singular. Returns null only when even a large ridge fails.
 */
export function solveSpd(a: Float64Array, n: number, b: Float64Array): Float64Array | null {
  let jitter = 0;
  for (let attempt = 0; attempt < 8; attempt++) {
    const m = Float64Array.from(a);
    if (jitter > 0) for (let i = 0; i < n; i++) m[i * n + i]! += jitter;
    if (choleskyInPlace(m, n)) return choleskySolve(m, n, b);
    let maxDiag = 0;
    for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, Math.abs(a[i * n + i]!));
    jitter = jitter === 0 ? Math.max(maxDiag, 1) * 1e-10 : jitter * 100;
  }
  return null;
}
