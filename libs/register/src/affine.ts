import { CuriaError } from '@curia/errors';

import type { Grid, GridField, Mat4 } from './field.js';
import { applyPoint, compose, IDENTITY, invert } from './grid.js';
import { checkInt, checkNumber, checkpoint, throwIfAborted, type OptimControl } from './optim-control.js';
import { checkField } from './optim-fields.js';
import { m3Det, m3Of, mat4From, median, nearestRotation, rotationXYZ, solveSpd } from './optim-math.js';
import { poolField } from './resample.js';

/**
 * Resamples the moving features onto `grid` through a fixed→moving world transform: the value at
 * voxel x of `grid` is the moving features at `fixedToMoving · world(x)`. `grid` is the fixed
 * features' grid, a pooled one (`poolField`) or a padded pooled one; the result must be on
 * `grid` with the fixed features' channel count. Outside the moving volume return what the
 * features hold there (0 or the edge value).
 */
export type MovingSampler = (fixedToMoving: Mat4, grid: Grid) => GridField | Promise<GridField>;

/** Robust loss of the affine fit. */
export type RobustLoss = 'huber' | 'tukey';

/** Options of {@link affineSearch}; every field has a default. */
export interface AffineSearchOptions extends OptimControl {
  /** Rigid (6 DOF: rotation + translation) instead of affine (12 DOF). Default false. */
  readonly rigid?: boolean;
  /** Fixed→moving transform to start from (default identity). */
  readonly initial?: Mat4;
  /** Try the translation aligning feature centres of mass (default true). */
  readonly centreOfMass?: boolean;
  /** Pooling factor of the coarse grid search (default 4). */
  readonly searchStride?: number;
  /** Translations of the grid search: ±n coarse voxels per axis (default 2). */
  readonly translationSteps?: number;
  /** Rotation angles (degrees) tried about each axis, all combinations (default [−10, 0, 10]). */
  readonly rotationsDeg?: readonly number[];
  /** Isotropic scales tried with every rotation (default [0.9, 1, 1.1]; ignored when rigid). */
  readonly scales?: readonly number[];
  /** Pooling factors of the block-matching levels, coarse to fine (default [2, 1]). */
  readonly levels?: readonly number[];
  /** Block matching + robust fit rounds per level (default 3). */
  readonly iterationsPerLevel?: number;
  /** Block half-width in level voxels: (2b+1)³ blocks (default 1). */
  readonly blockRadius?: number;
  /** Block-matching search half-width in level voxels (default 2). */
  readonly blockSearchRadius?: number;
  /** Most blocks matched per round (default 3000). */
  readonly maxBlocks?: number;
  /** Robust loss of the IRLS fit (default 'tukey'). */
  readonly robust?: RobustLoss;
  /**
   * Input-grid voxels next to each face where no block is matched (default 3): features there see
   * the edge of the field of view.
   */
  readonly borderMargin?: number;
}

/** The defaults of {@link AffineSearchOptions}. */
export const AFFINE_SEARCH_DEFAULTS: Readonly<{
  rigid: boolean;
  centreOfMass: boolean;
  searchStride: number;
  translationSteps: number;
  rotationsDeg: readonly number[];
  scales: readonly number[];
  levels: readonly number[];
  iterationsPerLevel: number;
  blockRadius: number;
  blockSearchRadius: number;
  maxBlocks: number;
  robust: RobustLoss;
  borderMargin: number;
}> = Object.freeze({
  rigid: false,
  centreOfMass: true,
  searchStride: 4,
  translationSteps: 2,
  rotationsDeg: Object.freeze<number[]>([-10, 0, 10]),
  scales: Object.freeze<number[]>([0.9, 1, 1.1]),
  levels: Object.freeze<number[]>([2, 1]),
  iterationsPerLevel: 3,
  blockRadius: 1,
  blockSearchRadius: 2,
  maxBlocks: 3000,
  robust: 'tukey',
  borderMargin: 3,
});

/** What {@link affineSearch} found. */
export interface AffineSearchResult {
  /** Fixed→moving world transform (row-major 4×4, LPS mm). */
  readonly fixedToMoving: Mat4;
  /** The transform after the coarse search (before block matching). */
  readonly coarse: Mat4;
  /** Blocks matched in the last round. */
  readonly matches: number;
  /** Fraction of those with a non-zero robust weight. */
  readonly inlierFraction: number;
  /** Median residual (mm) of the last fit. */
  readonly medianResidualMm: number;
  /** Mean squared feature difference at the coarse level before and after. */
  readonly coarseSsd: { readonly before: number; readonly after: number };
}

/** Interleaves channel-major data to voxel-major ([N][C]). */
function interleave(data: Float32Array, channels: number, n: number): Float32Array {
  const out = new Float32Array(channels * n);
  for (let c = 0; c < channels; c++) {
    for (let v = 0, o = c; v < n; v++, o += channels) out[o] = data[c * n + v]!;
  }
  return out;
}

function translation(t: readonly number[]): number[] {
  return [1, 0, 0, t[0]!, 0, 1, 0, t[1]!, 0, 0, 1, t[2]!, 0, 0, 0, 1];
}

/** x ↦ c + a·(x − c) for a 3×3 block a. */
function about(a: readonly number[], c: readonly number[]): number[] {
  const ac = [0, 1, 2].map((r) => a[3 * r]! * c[0]! + a[3 * r + 1]! * c[1]! + a[3 * r + 2]! * c[2]!);
  return mat4From(a, [c[0]! - ac[0]!, c[1]! - ac[1]!, c[2]! - ac[2]!]);
}

async function sample(sampler: MovingSampler, t: Mat4, grid: Grid, channels: number): Promise<Float32Array> {
  const f = await sampler(t, grid);
  const n = grid.dims[0] * grid.dims[1] * grid.dims[2];
  if (
    f.grid.dims[0] !== grid.dims[0] ||
    f.grid.dims[1] !== grid.dims[1] ||
    f.grid.dims[2] !== grid.dims[2] ||
    f.channels !== channels ||
    f.data.length !== channels * n
  ) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `moving sampler returned ${f.channels} channels on ${f.grid.dims.join('×')}; expected ${channels} on ${grid.dims.join('×')}`,
    );
  }
  return f.data;
}

/** Centre of "feature mass" Σ_c (f_c − b_c)² in world coordinates (b = fixed border medians). */
function centreOfMass(
  data: Float32Array,
  channels: number,
  grid: Grid,
  background: readonly number[],
): number[] {
  const [nx, ny, nz] = grid.dims;
  const n = nx * ny * nz;
  let m = 0;
  const s = [0, 0, 0];
  for (let k = 0, v = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, v++) {
        let w = 0;
        for (let c = 0; c < channels; c++) w += (data[c * n + v]! - background[c]!) ** 2;
        m += w;
        s[0]! += w * i;
        s[1]! += w * j;
        s[2]! += w * k;
      }
    }
  }
  if (!(m > 0)) return applyPoint(grid.affine, [(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2]);
  return applyPoint(grid.affine, [s[0]! / m, s[1]! / m, s[2]! / m]);
}

function borderMedians(
  data: Float32Array,
  channels: number,
  dims: readonly [number, number, number],
): number[] {
  const [nx, ny, nz] = dims;
  const n = nx * ny * nz;
  return Array.from({ length: channels }, (_, c) => {
    const vals: number[] = [];
    for (let k = 0, v = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++, v++) {
          if (
            i === 0 ||
            j === 0 ||
            (k === 0 && nz > 1) ||
            i === nx - 1 ||
            j === ny - 1 ||
            (k === nz - 1 && nz > 1)
          ) {
            vals.push(data[c * n + v]!);
          }
        }
      }
    }
    return median(vals);
  });
}

/** One block match: fixed voxel position and matched offset, both in level voxels. */
interface Match {
  readonly p: readonly [number, number, number];
  readonly d: readonly [number, number, number];
}

/** The fixed side of block matching on one level: voxel-major features and the chosen blocks. */
interface LevelBlocks {
  readonly dims: readonly [number, number, number];
  readonly channels: number;
  readonly b: number;
  readonly bz: number;
  /** Chosen block centres (level voxels) and their fixed features, block-major then channel. */
  readonly centres: readonly (readonly [number, number, number])[];
  readonly features: Float64Array;
}

/**
 * Chooses the most structured fixed blocks of a level — the highest summed feature variance over a
 * (2b+1)³ block, on a stride-2 lattice `margin` voxels clear of the faces, at most `maxBlocks` and at
 * most half of the lattice — and copies their features.
 */
function prepareBlocks(
  fixed: Float32Array,
  channels: number,
  dims: readonly [number, number, number],
  b: number,
  maxBlocks: number,
  margin: number,
): LevelBlocks {
  const [nx, ny, nz] = dims;
  const n = nx * ny * nz;
  const fi = interleave(fixed, channels, n);
  const bz = nz >= 2 * b + 1 ? b : 0;
  // Block centres keep `margin` level voxels (beyond the block) from every face, when the axis allows.
  const lo = dims.map((d, a) => {
    const half = a === 2 ? bz : b;
    const m = half + margin;
    return d - 1 - 2 * m >= 0 ? m : half;
  });
  const cands: { v: number; p: [number, number, number]; score: number }[] = [];
  for (let k = lo[2]!; k < nz - lo[2]!; k += 2) {
    for (let j = lo[1]!; j < ny - lo[1]!; j += 2) {
      for (let i = lo[0]!; i < nx - lo[0]!; i += 2) {
        let score = 0;
        for (let c = 0; c < channels; c++) {
          let s = 0;
          let s2 = 0;
          let cnt = 0;
          for (let dz = -bz; dz <= bz; dz++) {
            for (let dy = -b; dy <= b; dy++) {
              for (let dx = -b; dx <= b; dx++) {
                const x = fi[(i + dx + nx * (j + dy + ny * (k + dz))) * channels + c]!;
                s += x;
                s2 += x * x;
                cnt++;
              }
            }
          }
          score += s2 - (s * s) / cnt;
        }
        cands.push({ v: i + nx * (j + ny * k), p: [i, j, k], score });
      }
    }
  }
  cands.sort((x, y) => y.score - x.score || x.v - y.v);
  const maxScore = cands[0]?.score ?? 0;
  const chosen = cands
    .filter((c) => c.score > 1e-6 * maxScore)
    .slice(0, Math.min(maxBlocks, Math.ceil(cands.length / 2)));
  const blockVoxels = (2 * b + 1) ** 2 * (2 * bz + 1);
  const features = new Float64Array(chosen.length * blockVoxels * channels);
  let o = 0;
  for (const cand of chosen) {
    for (let dz = -bz; dz <= bz; dz++) {
      for (let dy = -b; dy <= b; dy++) {
        for (let dx = -b; dx <= b; dx++) {
          const base = (cand.v + dx + nx * (dy + ny * dz)) * channels;
          for (let c = 0; c < channels; c++) features[o++] = fi[base + c]!;
        }
      }
    }
  }
  return { dims, channels, b, bz, centres: chosen.map((c) => c.p), features };
}

/**
 * Block matching of the prepared fixed blocks against resampled moving features: for each block the
 * integer displacement within ±r (level voxels) minimising the block SSD, refined by a parabola per
 * axis.
 */
function matchBlocks(level: LevelBlocks, moving: Float32Array, r: number): Match[] {
  const { dims, channels, b, bz, centres, features } = level;
  const [nx, ny, nz] = dims;
  const n = nx * ny * nz;
  // Moving features, voxel-major and edge-padded by P = r + b so every access is in bounds.
  const pad = r + b;
  const px = nx + 2 * pad;
  const py = ny + 2 * pad;
  const pz = nz + 2 * pad;
  const mi = new Float32Array(px * py * pz * channels);
  for (let k = 0, o = 0; k < pz; k++) {
    const ks = Math.min(nz - 1, Math.max(0, k - pad));
    for (let j = 0; j < py; j++) {
      const js = Math.min(ny - 1, Math.max(0, j - pad));
      for (let i = 0; i < px; i++) {
        const is = Math.min(nx - 1, Math.max(0, i - pad));
        const v = is + nx * (js + ny * ks);
        for (let c = 0; c < channels; c++, o++) mi[o] = moving[c * n + v]!;
      }
    }
  }
  const mOff: number[] = [];
  for (let dz = -bz; dz <= bz; dz++) {
    for (let dy = -b; dy <= b; dy++) {
      for (let dx = -b; dx <= b; dx++) mOff.push((dx + px * (dy + py * dz)) * channels);
    }
  }
  const blockLen = mOff.length * channels;
  const rz = nz > 1 ? r : 0;
  const w = 2 * r + 1;
  const ssd = new Float64Array(w * w * (2 * rz + 1));
  const matches: Match[] = [];
  centres.forEach(([i, j, k], blockIndex) => {
    const fo = blockIndex * blockLen;
    let best = Infinity;
    let bi = 0;
    for (let dz = -rz, t = 0; dz <= rz; dz++) {
      for (let dy = -r; dy <= r; dy++) {
        for (let dx = -r; dx <= r; dx++, t++) {
          const centre = (i + dx + pad + px * (j + dy + pad + py * (k + dz + pad))) * channels;
          let s = 0;
          for (let q = 0, o = fo; q < mOff.length; q++) {
            const mb = centre + mOff[q]!;
            for (let c = 0; c < channels; c++, o++) {
              const e = features[o]! - mi[mb + c]!;
              s += e * e;
            }
          }
          ssd[t] = s;
          if (s < best) {
            best = s;
            bi = t;
          }
        }
      }
    }
    const refine = (d: number, rr: number, stride: number): number => {
      if (d <= -rr || d >= rr) return d;
      const a = ssd[bi - stride]!;
      const c = ssd[bi + stride]!;
      const den = a - 2 * best + c;
      return den > 0 ? d + (0.5 * (a - c)) / den : d;
    };
    const bx = (bi % w) - r;
    const by = (Math.floor(bi / w) % w) - r;
    const bzd = Math.floor(bi / (w * w)) - rz;
    matches.push({
      p: [i, j, k],
      d: [refine(bx, r, 1), refine(by, r, w), rz > 0 ? refine(bzd, rz, w * w) : 0],
    });
  });
  return matches;
}

/** Weighted least-squares affine y ≈ A x + t (rigid: weighted Kabsch), points centred on `c`. */
function fitWeighted(xs: Float64Array, ys: Float64Array, w: Float64Array, rigid: boolean): number[] | null {
  const m = w.length;
  let sw = 0;
  const mx = [0, 0, 0];
  const my = [0, 0, 0];
  for (let p = 0; p < m; p++) {
    const wp = w[p]!;
    sw += wp;
    for (let a = 0; a < 3; a++) {
      mx[a]! += wp * xs[3 * p + a]!;
      my[a]! += wp * ys[3 * p + a]!;
    }
  }
  if (!(sw > 0)) return null;
  for (let a = 0; a < 3; a++) {
    mx[a]! /= sw;
    my[a]! /= sw;
  }
  // Cross-covariance H = Σ w (y − ȳ)(x − x̄)ᵀ and covariance S = Σ w (x − x̄)(x − x̄)ᵀ.
  const h = new Array<number>(9).fill(0);
  const s = new Array<number>(9).fill(0);
  for (let p = 0; p < m; p++) {
    const wp = w[p]!;
    if (wp === 0) continue;
    const dx = [xs[3 * p]! - mx[0]!, xs[3 * p + 1]! - mx[1]!, xs[3 * p + 2]! - mx[2]!];
    const dy = [ys[3 * p]! - my[0]!, ys[3 * p + 1]! - my[1]!, ys[3 * p + 2]! - my[2]!];
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 3; c++) {
        h[3 * r + c]! += wp * dy[r]! * dx[c]!;
        s[3 * r + c]! += wp * dx[r]! * dx[c]!;
      }
    }
  }
  let a: number[];
  if (rigid) {
    a = nearestRotation(h);
  } else {
    // A = H S⁻¹: row r of A solves S aᵣ = hᵣ (S symmetric).
    a = [];
    for (let r = 0; r < 3; r++) {
      const row = solveSpd(s, [h[3 * r]!, h[3 * r + 1]!, h[3 * r + 2]!], 3);
      if (!row) return null;
      a.push(...row);
    }
  }
  const t = [0, 1, 2].map(
    (r) => my[r]! - (a[3 * r]! * mx[0]! + a[3 * r + 1]! * mx[1]! + a[3 * r + 2]! * mx[2]!),
  );
  return mat4From(a, t);
}

/**
 * Robust (IRLS) fit of a 12-DOF affine (or 6-DOF rigid) transform U with y ≈ U x over point pairs:
 * Huber or Tukey weights on the residual norms, scale 1.4826·MAD floored at `minScale`; Tukey runs
 * its first half of the `iterations` (default 30) with Huber weights to start near the answer.
 */
export function robustAffineFit(
  xs: Float64Array,
  ys: Float64Array,
  opts: { rigid: boolean; robust: RobustLoss; minScale: number; iterations?: number },
): { transform: number[]; inlierFraction: number; medianResidual: number } | null {
  const m = xs.length / 3;
  if (m < (opts.rigid ? 3 : 4)) return null;
  const w = new Float64Array(m).fill(1);
  const res = new Float64Array(m);
  let u: number[] | null = null;
  let sigma = 0;
  const iterations = opts.iterations ?? 30;
  for (let it = 0; it < iterations; it++) {
    const next = fitWeighted(xs, ys, w, opts.rigid);
    if (!next) return u ? { transform: u, inlierFraction: 0, medianResidual: NaN } : null;
    u = next;
    for (let p = 0; p < m; p++) {
      const q = applyPoint(u, [xs[3 * p]!, xs[3 * p + 1]!, xs[3 * p + 2]!]);
      res[p] = Math.hypot(q[0] - ys[3 * p]!, q[1] - ys[3 * p + 1]!, q[2] - ys[3 * p + 2]!);
    }
    sigma = Math.max(1.4826 * median(res), opts.minScale);
    // Tukey's redescending weights need a start near the answer: the first rounds use Huber's.
    const huber = opts.robust === 'huber' || it < Math.floor(iterations / 2);
    for (let p = 0; p < m; p++) {
      const r = res[p]!;
      if (huber) {
        const k = 1.345 * sigma;
        w[p] = r <= k ? 1 : k / r;
      } else {
        const c = 4.685 * sigma;
        w[p] = r < c ? (1 - (r / c) ** 2) ** 2 : 0;
      }
    }
  }
  let inliers = 0;
  for (let p = 0; p < m; p++) if (w[p]! > 0) inliers++;
  return { transform: u!, inlierFraction: inliers / m, medianResidual: median(res) };
}

/**
 * The coarse search's scorer: fixed features on the coarse grid and the moving features sampled
 * once (through the start transform) on a padded copy of it, voxel-major; `ssd(S)` is the mean
 * squared feature difference with the moving features at S(x), trilinear and edge-clamped.
 */
class CoarseCache {
  private readonly fixed: Float32Array;
  private readonly moving: Float32Array;
  private readonly toCache: number[];

  constructor(
    fixed: Float32Array,
    moving: Float32Array,
    private readonly channels: number,
    private readonly grid: Grid,
    private readonly ext: Grid,
  ) {
    const n = grid.dims[0] * grid.dims[1] * grid.dims[2];
    const ne = ext.dims[0] * ext.dims[1] * ext.dims[2];
    this.fixed = interleave(fixed, channels, n);
    this.moving = interleave(moving, channels, ne);
    this.toCache = invert(ext.affine);
    this.channelMajor = moving;
  }

  private readonly channelMajor: Float32Array;

  /** The cached moving features over the unpadded box, channel-major (for the centre of mass). */
  inner(): Float32Array {
    const [nx, ny, nz] = this.grid.dims;
    const [ex, ey] = this.ext.dims;
    const n = nx * ny * nz;
    const ne = this.ext.dims[0] * ey * this.ext.dims[2];
    const p = applyPoint(this.toCache, applyPoint(this.grid.affine, [0, 0, 0])).map((x) => Math.round(x));
    const out = new Float32Array(this.channels * n);
    for (let c = 0; c < this.channels; c++) {
      for (let k = 0, v = 0; k < nz; k++) {
        for (let j = 0; j < ny; j++) {
          for (let i = 0; i < nx; i++, v++) {
            out[c * n + v] = this.channelMajor[c * ne + i + p[0]! + ex * (j + p[1]! + ey * (k + p[2]!))]!;
          }
        }
      }
    }
    return out;
  }

  ssd(s: Mat4): number {
    const m = compose(this.toCache, compose(s, this.grid.affine));
    const [nx, ny, nz] = this.grid.dims;
    const [ex, ey, ez] = this.ext.dims;
    const ch = this.channels;
    const fx = this.fixed;
    const mv = this.moving;
    const sy = ex * ch;
    const sz = ex * ey * ch;
    let total = 0;
    for (let k = 0, v = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        let x = m[1]! * j + m[2]! * k + m[3]!;
        let y = m[5]! * j + m[6]! * k + m[7]!;
        let z = m[9]! * j + m[10]! * k + m[11]!;
        for (let i = 0; i < nx; i++, v++, x += m[0]!, y += m[4]!, z += m[8]!) {
          const px = x < 0 ? 0 : x > ex - 1 ? ex - 1 : x;
          const py = y < 0 ? 0 : y > ey - 1 ? ey - 1 : y;
          const pz = z < 0 ? 0 : z > ez - 1 ? ez - 1 : z;
          const i0 = Math.min(Math.floor(px), Math.max(ex - 2, 0));
          const j0 = Math.min(Math.floor(py), Math.max(ey - 2, 0));
          const k0 = Math.min(Math.floor(pz), Math.max(ez - 2, 0));
          const ax = px - i0;
          const ay = py - j0;
          const az = pz - k0;
          const w000 = (1 - ax) * (1 - ay) * (1 - az);
          const w100 = ax * (1 - ay) * (1 - az);
          const w010 = (1 - ax) * ay * (1 - az);
          const w110 = ax * ay * (1 - az);
          const w001 = (1 - ax) * (1 - ay) * az;
          const w101 = ax * (1 - ay) * az;
          const w011 = (1 - ax) * ay * az;
          const w111 = ax * ay * az;
          const ox = ex > 1 ? ch : 0;
          const oy = ey > 1 ? sy : 0;
          const oz = ez > 1 ? sz : 0;
          const b = (i0 + ex * (j0 + ey * k0)) * ch;
          const f = v * ch;
          for (let c = 0; c < ch; c++) {
            const o = b + c;
            const val =
              w000 * mv[o]! +
              w100 * mv[o + ox]! +
              w010 * mv[o + oy]! +
              w110 * mv[o + oy + ox]! +
              w001 * mv[o + oz]! +
              w101 * mv[o + oz + ox]! +
              w011 * mv[o + oz + oy]! +
              w111 * mv[o + oz + oy + ox]!;
            const e = fx[f + c]! - val;
            total += e * e;
          }
        }
      }
    }
    return total / (nx * ny * nz * ch);
  }
}

/**
 * Affine (or rigid) registration of features: a coarse discrete search, then block matching with
 * robust least-squares fits.
 *
 * (a) Coarse search on the fixed grid pooled by `searchStride`: the start transform, optionally its
 * centre-of-feature-mass translation, then a grid of translations (±n coarse voxels), then every
 * combination of rotations about the three axes (about the fixed centre of mass) and isotropic
 * scales, then a half-step translation refinement, each minimising the mean feature SSD.
 * (b) At every block-matching level (pooling factors, coarse to fine): resample the moving features
 * through the current transform, match the most structured fixed blocks within a window (SSD,
 * sub-voxel by parabola), fit U with y ≈ U x by IRLS (Tukey or Huber) and compose T ← T ∘ U;
 * `iterationsPerLevel` rounds or until U moves the fixed box corners by < 0.05 level voxels.
 *
 * Deterministic (no random sampling). Returns the fixed→moving world transform. INVALID_ARGUMENT for
 * malformed fields, options or a sampler returning the wrong grid; CANCELLED when `signal` fires.
 */
export async function affineSearch(
  fixed: GridField,
  movingSampler: MovingSampler,
  opts: AffineSearchOptions = {},
): Promise<AffineSearchResult> {
  checkField(fixed, 'fixed');
  const d = AFFINE_SEARCH_DEFAULTS;
  const rigid = opts.rigid ?? d.rigid;
  const searchStride = checkInt(opts.searchStride ?? d.searchStride, 1, 16, 'searchStride');
  const steps = checkInt(opts.translationSteps ?? d.translationSteps, 0, 8, 'translationSteps');
  const rotations = opts.rotationsDeg ?? d.rotationsDeg;
  const scales = rigid ? [1] : (opts.scales ?? d.scales);
  const levels = opts.levels ?? d.levels;
  const rounds = checkInt(opts.iterationsPerLevel ?? d.iterationsPerLevel, 0, 50, 'iterationsPerLevel');
  const b = checkInt(opts.blockRadius ?? d.blockRadius, 0, 4, 'blockRadius');
  const r = checkInt(opts.blockSearchRadius ?? d.blockSearchRadius, 1, 8, 'blockSearchRadius');
  const maxBlocks = checkInt(opts.maxBlocks ?? d.maxBlocks, 16, 1_000_000, 'maxBlocks');
  const robust = opts.robust ?? d.robust;
  const margin = checkInt(opts.borderMargin ?? d.borderMargin, 0, 64, 'borderMargin');
  rotations.forEach((x, i) => checkNumber(x, -90, 90, `rotationsDeg[${i}]`));
  scales.forEach((x, i) => checkNumber(x, 0.25, 4, `scales[${i}]`));
  levels.forEach((x, i) => checkInt(x, 1, 16, `levels[${i}]`));
  if (robust !== 'huber' && robust !== 'tukey') {
    throw new CuriaError('INVALID_ARGUMENT', `robust must be 'huber' or 'tukey', got '${String(robust)}'`);
  }
  const initial = opts.initial ?? IDENTITY;
  if (initial.length !== 16 || initial.some((x) => !Number.isFinite(x))) {
    throw new CuriaError('INVALID_ARGUMENT', 'initial must be 16 finite numbers');
  }
  const { signal, onProgress } = opts;
  const what = 'affineSearch';
  const channels = fixed.channels;
  throwIfAborted(signal, what);

  // (a) Coarse search. The moving features are sampled once through `initial` onto the coarse grid
  // padded by a quarter of its extent; candidates S (fixed-space transforms, T = initial ∘ S) are
  // scored against that cache with a local trilinear sampler.
  // A small grid keeps at least 4 coarse voxels per axis (its pooled and point-sampled sides would
  // otherwise differ more than a misalignment does).
  let stride = searchStride;
  while (stride > 1 && fixed.grid.dims.some((x) => x >= 4 && Math.ceil(x / stride) < 4)) stride--;
  const { grid: cGrid, data: cF } = poolField(fixed, stride);
  const pad = cGrid.dims.map((x) => (x > 1 ? Math.max(steps + 2, Math.ceil(x / 4)) : 0));
  const eGrid: Grid = {
    dims: [cGrid.dims[0] + 2 * pad[0]!, cGrid.dims[1] + 2 * pad[1]!, cGrid.dims[2] + 2 * pad[2]!],
    affine: compose(cGrid.affine, translation([-pad[0]!, -pad[1]!, -pad[2]!])),
  };
  const cache = new CoarseCache(
    cF,
    await sample(movingSampler, initial, eGrid, channels),
    channels,
    cGrid,
    eGrid,
  );
  const background = borderMedians(cF, channels, cGrid.dims);
  const cFix = centreOfMass(cF, channels, cGrid, background);
  const nTrans = (2 * steps + 1) ** 3;
  const nRot = rotations.length ** 3 * scales.length;
  const totalCoarse = 2 + nTrans + nRot + 27;
  let evals = 0;
  const tick = async (): Promise<void> => {
    evals++;
    onProgress?.('affine-coarse', evals, totalCoarse);
    if (evals % 32 === 0) await checkpoint(signal, what);
  };
  let best: number[] = [...IDENTITY];
  const before = cache.ssd(best);
  let bestCost = before;
  const consider = (s: number[]): void => {
    const c = cache.ssd(s);
    if (c < bestCost) {
      best = s;
      bestCost = c;
    }
  };
  await tick();
  if (opts.centreOfMass ?? d.centreOfMass) {
    const cMov = centreOfMass(cache.inner(), channels, cGrid, background);
    consider(translation([cMov[0]! - cFix[0]!, cMov[1]! - cFix[1]!, cMov[2]! - cFix[2]!]));
  }
  await tick();
  const cAxes = [0, 1, 2].map((a) => [cGrid.affine[a]!, cGrid.affine[4 + a]!, cGrid.affine[8 + a]!]);
  const gridStep = (ijk: readonly number[], scale: number): number[] =>
    [0, 1, 2].map(
      (row) => scale * (ijk[0]! * cAxes[0]![row]! + ijk[1]! * cAxes[1]![row]! + ijk[2]! * cAxes[2]![row]!),
    );
  const searchTranslations = async (n: number, scale: number): Promise<void> => {
    const base = best;
    const nzSteps = cGrid.dims[2] > 1 ? n : 0;
    for (let k = -nzSteps; k <= nzSteps; k++) {
      for (let j = -n; j <= n; j++) {
        for (let i = -n; i <= n; i++) {
          if (i === 0 && j === 0 && k === 0) continue;
          consider(compose(base, translation(gridStep([i, j, k], scale))));
          await tick();
        }
      }
    }
  };
  await searchTranslations(steps, 1);
  {
    const base = best;
    for (const ax of rotations) {
      for (const ay of rotations) {
        for (const az of rotations) {
          for (const sc of scales) {
            if (ax === 0 && ay === 0 && az === 0 && sc === 1) continue;
            const rot = rotationXYZ((ax * Math.PI) / 180, (ay * Math.PI) / 180, (az * Math.PI) / 180).map(
              (x) => x * sc,
            );
            consider(compose(base, about(rot, cFix)));
            await tick();
          }
        }
      }
    }
  }
  await searchTranslations(1, 0.5);
  const coarse = compose(initial, best);
  onProgress?.('affine-coarse', totalCoarse, totalCoarse);

  // (b) Block matching + robust fits.
  let current = coarse;
  let last = { matches: 0, inlierFraction: 0, medianResidual: NaN };
  const totalRounds = levels.length * rounds;
  let round = 0;
  for (const f of levels) {
    const { grid: g, data: lF } = poolField(fixed, f);
    const spacing = Math.cbrt(Math.abs(m3Det(m3Of(g.affine))));
    const blocks = prepareBlocks(lF, channels, g.dims, b, maxBlocks, Math.ceil(margin / f));
    for (let it = 0; it < rounds; it++) {
      await checkpoint(signal, what);
      const lM = await sample(movingSampler, current, g, channels);
      // After the first round the residual shifts are about a voxel or less: a ±1 window suffices.
      const matches = matchBlocks(blocks, lM, it === 0 && f === levels[0] ? r : 1);
      const xs = new Float64Array(3 * matches.length);
      const ys = new Float64Array(3 * matches.length);
      matches.forEach((mt, p) => {
        const x = applyPoint(g.affine, [mt.p[0], mt.p[1], mt.p[2]]);
        const y = applyPoint(g.affine, [mt.p[0] + mt.d[0], mt.p[1] + mt.d[1], mt.p[2] + mt.d[2]]);
        xs.set(x, 3 * p);
        ys.set(y, 3 * p);
      });
      const fit = robustAffineFit(xs, ys, { rigid, robust, minScale: 0.1 * spacing });
      round++;
      onProgress?.('affine-blocks', round, totalRounds);
      if (!fit) break;
      current = compose(current, fit.transform);
      last = {
        matches: matches.length,
        inlierFraction: fit.inlierFraction,
        medianResidual: fit.medianResidual,
      };
      if (maxCornerShift(fit.transform, g) < 0.1 * spacing) break;
    }
  }
  if (rigid) {
    current = mat4From(nearestRotation(m3Of(current)), [current[3]!, current[7]!, current[11]!]);
  }
  const after = cache.ssd(compose(invert(initial), current));
  return {
    fixedToMoving: current,
    coarse,
    matches: last.matches,
    inlierFraction: last.inlierFraction,
    medianResidualMm: last.medianResidual,
    coarseSsd: { before, after },
  };
}

/** Largest |U x − x| (mm) over the corners of a grid's box. */
function maxCornerShift(u: Mat4, g: Grid): number {
  let worst = 0;
  for (const i of [0, g.dims[0] - 1]) {
    for (const j of [0, g.dims[1] - 1]) {
      for (const k of [0, g.dims[2] - 1]) {
        const x = applyPoint(g.affine, [i, j, k]);
        const y = applyPoint(u, x);
        worst = Math.max(worst, Math.hypot(y[0] - x[0], y[1] - x[1], y[2] - x[2]));
      }
    }
  }
  return worst;
}
