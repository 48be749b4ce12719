import type { Dims3 } from './optim-fields.js';
import { boxSmooth } from './optim-smooth.js';
import { TS_SMOOTHING, type SmoothingBackend } from './smoothing.js';

/**
 * The instance-optimisation problem of ConvexAdam's second stage, on one level grid: parameters P
 * (3 channels, voxel units of the level, channel-major) are smoothed into the displacement
 * S = B^p(P) (B the normalised 3×3×3 box, p = `smoothingPasses`), and
 *
 *   loss(P) = simScale · Σ_v Σ_c (M_c(v + S(v)) − F_c(v))²  +  λ · (1/N) Σ_v Σ_axes |S(v + e_a) − S(v)|²
 *
 * (the first sum over the voxels of `data`, all by default)
 * with M sampled trilinearly (edge values continue beyond the grid, as in the cost volume) and the
 * second sum over neighbour pairs inside the grid (diffusion regularisation).
 */
export interface AdamProblem {
  readonly fixed: Float32Array;
  readonly moving: Float32Array;
  readonly channels: number;
  readonly dims: Dims3;
  /** Weight of the similarity sum (the optimiser uses 1 / (N · Σ_c var F_c)). */
  readonly simScale: number;
  /** Diffusion weight λ. */
  readonly lambda: number;
  /** Box passes of the smoothing reparameterisation. */
  readonly smoothingPasses: number;
  /** Voxels whose similarity counts (1) or not (0); null = all. */
  readonly data?: Uint8Array | null;
}

/** The value of {@link adamObjective}'s terms. */
export interface AdamLoss {
  readonly loss: number;
  readonly similarity: number;
  readonly regularisation: number;
}

/** The smoothed displacement S = B^p(P) of parameters P. */
export function smoothedDisplacement(problem: AdamProblem, params: Float64Array): Float64Array {
  const s = Float64Array.from(params);
  if (problem.smoothingPasses > 0) boxSmooth(s, 3, problem.dims, 1, problem.smoothingPasses);
  return s;
}

/** {@link smoothedDisplacement} through a smoothing backend. */
export async function smoothedDisplacementWith(
  problem: AdamProblem,
  params: Float64Array,
  smoothing: SmoothingBackend,
): Promise<Float64Array> {
  const s = Float64Array.from(params);
  await smoothing.smooth({ data: s, channels: 3, dims: problem.dims, passes: problem.smoothingPasses });
  return s;
}

/**
 * The loss of {@link AdamProblem} at `params`, and its exact gradient written to `grad` (same
 * layout as `params`). Gradients are hand derived: through the trilinear sampler (piecewise-linear
 * weights; zero along an axis where the position is clamped), the diffusion term, and the adjoint
 * of the box smoothing.
 */
export function adamObjective(problem: AdamProblem, params: Float64Array, grad: Float64Array): AdamLoss {
  const terms = adamTerms(problem, smoothedDisplacement(problem, params), grad);
  if (problem.smoothingPasses > 0) boxSmooth(grad, 3, problem.dims, 1, problem.smoothingPasses, true);
  return terms;
}

/** {@link adamObjective} with both smoothings (forward and adjoint) through `smoothing`. */
export async function adamObjectiveWith(
  problem: AdamProblem,
  params: Float64Array,
  grad: Float64Array,
  smoothing: SmoothingBackend,
): Promise<AdamLoss> {
  const terms = adamTerms(problem, await smoothedDisplacementWith(problem, params, smoothing), grad);
  const { dims, smoothingPasses: passes } = problem;
  await smoothing.smooth({ data: grad, channels: 3, dims, passes, adjoint: true });
  return terms;
}

/** The loss at the smoothed displacement `s`, and its gradient with respect to `s` in `grad`. */
function adamTerms(problem: AdamProblem, s: Float64Array, grad: Float64Array): AdamLoss {
  const { fixed, moving, channels, dims, simScale, lambda } = problem;
  const data = problem.data ?? null;
  const [nx, ny, nz] = dims;
  const n = nx * ny * nz;
  grad.fill(0);
  const sx = nx > 1 ? 1 : 0;
  const sy = ny > 1 ? nx : 0;
  const sz = nz > 1 ? nx * ny : 0;
  const mx = Math.max(nx - 2, 0);
  const my = Math.max(ny - 2, 0);
  const mz = Math.max(nz - 2, 0);
  let sim = 0;
  for (let k = 0, v = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, v++) {
        if (data !== null && data[v] === 0) continue;
        let x = i + s[v]!;
        let y = j + s[n + v]!;
        let z = k + s[2 * n + v]!;
        // Beyond the grid the features continue with their edge values (no gradient along that axis).
        let ax = sx;
        let ay = sy;
        let az = sz;
        if (x < 0 || x > nx - 1) {
          x = x < 0 ? 0 : nx - 1;
          ax = 0;
        }
        if (y < 0 || y > ny - 1) {
          y = y < 0 ? 0 : ny - 1;
          ay = 0;
        }
        if (z < 0 || z > nz - 1) {
          z = z < 0 ? 0 : nz - 1;
          az = 0;
        }
        const i0 = Math.min(Math.floor(x), mx);
        const j0 = Math.min(Math.floor(y), my);
        const k0 = Math.min(Math.floor(z), mz);
        const fx = x - i0;
        const fy = y - j0;
        const fz = z - k0;
        const gy = 1 - fy;
        const gz = 1 - fz;
        const b = i0 + nx * (j0 + ny * k0);
        let dX = 0;
        let dY = 0;
        let dZ = 0;
        for (let c = 0, o = b, fo = v; c < channels; c++, o += n, fo += n) {
          const c000 = moving[o]!;
          const c100 = moving[o + sx]!;
          const c010 = moving[o + sy]!;
          const c110 = moving[o + sy + sx]!;
          const c001 = moving[o + sz]!;
          const c101 = moving[o + sz + sx]!;
          const c011 = moving[o + sz + sy]!;
          const c111 = moving[o + sz + sy + sx]!;
          // Interpolate along x, then y, then z; keep the partial derivatives.
          const e00 = c000 + fx * (c100 - c000);
          const e10 = c010 + fx * (c110 - c010);
          const e01 = c001 + fx * (c101 - c001);
          const e11 = c011 + fx * (c111 - c011);
          const f0 = e00 + fy * (e10 - e00);
          const f1 = e01 + fy * (e11 - e01);
          const w = f0 + fz * (f1 - f0);
          const r = w - fixed[fo]!;
          sim += r * r;
          if (ax !== 0) {
            const q0 = gy * (c100 - c000) + fy * (c110 - c010);
            const q1 = gy * (c101 - c001) + fy * (c111 - c011);
            dX += r * (gz * q0 + fz * q1);
          }
          if (ay !== 0) dY += r * (gz * (e10 - e00) + fz * (e11 - e01));
          if (az !== 0) dZ += r * (f1 - f0);
        }
        grad[v] = 2 * simScale * dX;
        grad[n + v] = 2 * simScale * dY;
        grad[2 * n + v] = 2 * simScale * dZ;
      }
    }
  }
  // Diffusion: Σ over neighbour pairs of squared differences, scaled by λ / N.
  let reg = 0;
  const rs = lambda / n;
  for (let c = 0; c < 3; c++) {
    const o = c * n;
    for (let k = 0, v = o; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++, v++) {
          const u = s[v]!;
          if (i + 1 < nx) {
            const d = s[v + 1]! - u;
            reg += d * d;
            grad[v + 1]! += 2 * rs * d;
            grad[v]! -= 2 * rs * d;
          }
          if (j + 1 < ny) {
            const d = s[v + nx]! - u;
            reg += d * d;
            grad[v + nx]! += 2 * rs * d;
            grad[v]! -= 2 * rs * d;
          }
          if (k + 1 < nz) {
            const d = s[v + nx * ny]! - u;
            reg += d * d;
            grad[v + nx * ny]! += 2 * rs * d;
            grad[v]! -= 2 * rs * d;
          }
        }
      }
    }
  }
  const similarity = simScale * sim;
  const regularisation = rs * reg;
  return { loss: similarity + regularisation, similarity, regularisation };
}

/** Adam hyper-parameters. */
export interface AdamSettings {
  readonly iterations: number;
  /** Step size in level voxels. */
  readonly learningRate: number;
  readonly beta1?: number;
  readonly beta2?: number;
}

/**
 * Runs Adam on {@link adamObjective} from `init` (modified in place and returned); `step` is called
 * after every iteration (it may throw to stop, or await to yield). The smoothings go through
 * `smoothing` (default TypeScript).
 */
export async function runAdam(
  problem: AdamProblem,
  init: Float64Array,
  settings: AdamSettings,
  step: (iteration: number, loss: AdamLoss) => Promise<void> | void,
  smoothing: SmoothingBackend = TS_SMOOTHING,
): Promise<Float64Array> {
  const b1 = settings.beta1 ?? 0.9;
  const b2 = settings.beta2 ?? 0.999;
  const eps = 1e-8;
  const p = init;
  const len = p.length;
  const n = len / 3;
  const g = new Float64Array(len);
  const m = new Float64Array(len);
  const v = new Float64Array(len);
  let b1t = 1;
  let b2t = 1;
  for (let t = 1; t <= settings.iterations; t++) {
    const loss = await adamObjectiveWith(problem, p, g, smoothing);
    b1t *= b1;
    b2t *= b2;
    const lr = settings.learningRate;
    for (let i = 0; i < len; i++) {
      // Per-voxel gradients are O(1/N); scale to O(1) so eps stays negligible.
      const gi = g[i]! * n;
      const mi = b1 * m[i]! + (1 - b1) * gi;
      const vi = b2 * v[i]! + (1 - b2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i]! -= (lr * (mi / (1 - b1t))) / (Math.sqrt(vi / (1 - b2t)) + eps);
    }
    await step(t, loss);
  }
  return p;
}
