import type { Mat4 } from './field.js';

/*
 * Small dense 3×3 linear algebra for the optimisers (4×4 affines are `grid.ts`'s compose, invert
 * and applyPoint): symmetric eigen-decomposition (cyclic Jacobi), SVD-based projection onto
 * rotations, and a small SPD solver for the normal equations of the robust affine fit.
 */

/** The upper-left 3×3 block of a 4×4 matrix, row-major. */
export function m3Of(m: Mat4): number[] {
  return [m[0]!, m[1]!, m[2]!, m[4]!, m[5]!, m[6]!, m[8]!, m[9]!, m[10]!];
}

/** A 4×4 affine from a row-major 3×3 block and a translation. */
export function mat4From(a: readonly number[], t: readonly number[]): number[] {
  return [a[0]!, a[1]!, a[2]!, t[0]!, a[3]!, a[4]!, a[5]!, t[1]!, a[6]!, a[7]!, a[8]!, t[2]!, 0, 0, 0, 1];
}

/** Determinant of a row-major 3×3 matrix. */
export function m3Det(a: readonly number[]): number {
  return (
    a[0]! * (a[4]! * a[8]! - a[5]! * a[7]!) -
    a[1]! * (a[3]! * a[8]! - a[5]! * a[6]!) +
    a[2]! * (a[3]! * a[7]! - a[4]! * a[6]!)
  );
}

/** Row-major 3×3 product. */
export function m3Mul(a: readonly number[], b: readonly number[]): number[] {
  const out = new Array<number>(9).fill(0);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) {
      let s = 0;
      for (let k = 0; k < 3; k++) s += a[3 * r + k]! * b[3 * k + c]!;
      out[3 * r + c] = s;
    }
  }
  return out;
}

/** Transpose of a row-major 3×3 matrix. */
export function m3Transpose(a: readonly number[]): number[] {
  return [a[0]!, a[3]!, a[6]!, a[1]!, a[4]!, a[7]!, a[2]!, a[5]!, a[8]!];
}

/**
 * Eigen-decomposition of a symmetric 3×3 matrix by cyclic Jacobi rotations: eigenvalues in
 * descending order and the matching unit eigenvectors as the COLUMNS of `vectors` (row-major).
 */
export function symmetricEigen3(s: readonly number[]): { values: number[]; vectors: number[] } {
  const a = [...s];
  const v = [1, 0, 0, 0, 1, 0, 0, 0, 1];
  for (let sweep = 0; sweep < 50; sweep++) {
    const off = a[1]! ** 2 + a[2]! ** 2 + a[5]! ** 2;
    const diag = a[0]! ** 2 + a[4]! ** 2 + a[8]! ** 2;
    if (off <= 1e-30 * Math.max(diag, 1e-300)) break;
    for (const [p, q] of [
      [0, 1],
      [0, 2],
      [1, 2],
    ] as const) {
      const apq = a[3 * p + q]!;
      if (apq === 0) continue;
      const app = a[3 * p + p]!;
      const aqq = a[3 * q + q]!;
      const theta = (aqq - app) / (2 * apq);
      const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const c = 1 / Math.sqrt(t * t + 1);
      const sn = t * c;
      // A ← Jᵀ A J with J the rotation in the (p, q) plane.
      for (let k = 0; k < 3; k++) {
        const akp = a[3 * k + p]!;
        const akq = a[3 * k + q]!;
        a[3 * k + p] = c * akp - sn * akq;
        a[3 * k + q] = sn * akp + c * akq;
      }
      for (let k = 0; k < 3; k++) {
        const apk = a[3 * p + k]!;
        const aqk = a[3 * q + k]!;
        a[3 * p + k] = c * apk - sn * aqk;
        a[3 * q + k] = sn * apk + c * aqk;
      }
      for (let k = 0; k < 3; k++) {
        const vkp = v[3 * k + p]!;
        const vkq = v[3 * k + q]!;
        v[3 * k + p] = c * vkp - sn * vkq;
        v[3 * k + q] = sn * vkp + c * vkq;
      }
    }
  }
  const order = [0, 1, 2].sort((i, j) => a[3 * j + j]! - a[3 * i + i]!);
  return {
    values: order.map((i) => a[3 * i + i]!),
    vectors: [0, 1, 2].flatMap((r) => order.map((i) => v[3 * r + i]!)),
  };
}

/**
 * The rotation nearest to a 3×3 matrix in the Frobenius norm (the orthogonal polar factor, with the
 * smallest singular direction flipped when the determinant is negative, as in Kabsch).
 */
export function nearestRotation(m: readonly number[]): number[] {
  // M = U Σ Vᵀ; MᵀM = V Σ² Vᵀ; R = U diag(1, 1, sign det M) Vᵀ with U = M V Σ⁻¹.
  const { values, vectors: v } = symmetricEigen3(m3Mul(m3Transpose(m), m));
  const sig = values.map((x) => Math.sqrt(Math.max(x, 0)));
  const mv = m3Mul(m, v);
  const u = new Array<number>(9).fill(0);
  const col = (a: readonly number[], j: number): number[] => [a[j]!, a[3 + j]!, a[6 + j]!];
  const setCol = (a: number[], j: number, x: readonly number[]): void => {
    for (let r = 0; r < 3; r++) a[3 * r + j] = x[r]!;
  };
  const norm = (x: readonly number[]): number => Math.hypot(x[0]!, x[1]!, x[2]!);
  const cross = (a: readonly number[], b: readonly number[]): number[] => [
    a[1]! * b[2]! - a[2]! * b[1]!,
    a[2]! * b[0]! - a[0]! * b[2]!,
    a[0]! * b[1]! - a[1]! * b[0]!,
  ];
  if (!(sig[0]! > 0)) return [1, 0, 0, 0, 1, 0, 0, 0, 1];
  const u0 = col(mv, 0).map((x) => x / sig[0]!);
  setCol(u, 0, u0);
  let u1 = col(mv, 1);
  const d01 = u1[0]! * u0[0]! + u1[1]! * u0[1]! + u1[2]! * u0[2]!;
  u1 = u1.map((x, i) => x - d01 * u0[i]!);
  if (norm(u1) < 1e-12 * sig[0]!) {
    // Rank one: any unit vector orthogonal to u0.
    const e = Math.abs(u0[0]!) < 0.9 ? [1, 0, 0] : [0, 1, 0];
    u1 = cross(u0, e);
  }
  const n1 = norm(u1);
  u1 = u1.map((x) => x / n1);
  setCol(u, 1, u1);
  // Third column: the right-handed completion, which makes det(U Vᵀ) = +1 when det V = +1 … then
  // the sign is fixed below from the determinants.
  setCol(u, 2, cross(u0, u1));
  // U has det +1 by construction; R = U Vᵀ has det = det V. Flip the smallest direction of V if needed.
  const vt = m3Transpose(v);
  if (m3Det(v) < 0) {
    for (let c = 0; c < 3; c++) vt[6 + c] = -vt[6 + c]!;
  }
  return m3Mul(u, vt);
}

/**
 * Solves the symmetric positive (semi-)definite system `A x = b` (n×n row-major) by Cholesky with a
 * tiny diagonal ridge; returns null when it is numerically singular.
 */
export function solveSpd(a: readonly number[], b: readonly number[], n: number): number[] | null {
  const l = new Array<number>(n * n).fill(0);
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, a[n * i + i]!);
  if (!(maxDiag > 0)) return null;
  const ridge = 1e-12 * maxDiag;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[n * i + j]! + (i === j ? ridge : 0);
      for (let k = 0; k < j; k++) s -= l[n * i + k]! * l[n * j + k]!;
      if (i === j) {
        if (!(s > 1e-10 * maxDiag)) return null;
        l[n * i + i] = Math.sqrt(s);
      } else {
        l[n * i + j] = s / l[n * j + j]!;
      }
    }
  }
  const y = new Array<number>(n).fill(0);
  for (let i = 0; i < n; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= l[n * i + k]! * y[k]!;
    y[i] = s / l[n * i + i]!;
  }
  const x = new Array<number>(n).fill(0);
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i]!;
    for (let k = i + 1; k < n; k++) s -= l[n * k + i]! * x[k]!;
    x[i] = s / l[n * i + i]!;
  }
  return x;
}

/** Rotation matrix (row-major 3×3) of angles (radians) about x, then y, then z: Rz·Ry·Rx. */
export function rotationXYZ(ax: number, ay: number, az: number): number[] {
  const [cx, sx, cy, sy, cz, sz] = [
    Math.cos(ax),
    Math.sin(ax),
    Math.cos(ay),
    Math.sin(ay),
    Math.cos(az),
    Math.sin(az),
  ];
  const rx = [1, 0, 0, 0, cx, -sx, 0, sx, cx];
  const ry = [cy, 0, sy, 0, 1, 0, -sy, 0, cy];
  const rz = [cz, -sz, 0, sz, cz, 0, 0, 0, 1];
  return m3Mul(rz, m3Mul(ry, rx));
}

/** Median of a copy of `values` (NaN for an empty list). */
export function median(values: ArrayLike<number>): number {
  const s = Float64Array.from(values).sort();
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 === 1 ? s[(n - 1) / 2]! : 0.5 * (s[n / 2 - 1]! + s[n / 2]!);
}
