import { CuriaError } from '@curia/errors';
import { HeadGraph } from '@curia/heads';
import type { ModelParts } from '@curia/model';
import { Tensor } from 'onnxruntime-node';

import { voxelCount, type GridField } from './field.js';
import { IDENTITY } from './grid.js';
import {
  averagePool,
  edgePad,
  onBatch,
  OnnxStep,
  selectStepBackend,
  shiftedSlice,
  type Closable,
  type OnnxStepOptions,
  type SelectOptions,
} from './onnx-steps.js';

/**
 * MIND-SSC: the self-similarity context descriptor of Heinrich et al., "Towards realtime multimodal
 * fusion for image-guided interventions using self-similarity context" (MICCAI 2013), as the
 * Learn2Reg baselines and ConvexAdam compute it. For an image I on a grid, a dilation d and a patch
 * radius r (voxels):
 *
 * 1. The six-neighbourhood n₀…n₅ = (−d,0,0), (0,−d,0), (0,0,−d), (+d,0,0), (0,+d,0), (0,0,+d) in
 *    voxel axes (i, j, k). Its 12 pairs (a, b), a < b, at squared distance 2d² (neighbours on
 *    different axes; opposite neighbours are left out) are the 12 channels, in lexicographic order:
 *    (0,1) (0,2) (0,4) (0,5) (1,2) (1,3) (1,5) (2,3) (2,4) (3,4) (3,5) (4,5).
 * 2. Patch distance D_ab(x) = mean over p ∈ [−r, r]³ of (I(x + p + n_a) − I(x + p + n_b))², every
 *    index clamped to the grid (replicate padding: first of the shifted image, then of the squared
 *    differences, as `ReplicationPad3d` before the shift and before the box filter).
 * 3. M_ab = D_ab − min_ab D_ab; variance V(x) = mean_ab M_ab(x), clamped to
 *    [10⁻³·V̄, 10³·V̄] with V̄ the mean of V over the grid.
 * 4. MIND_ab(x) = exp(−M_ab(x) / V(x)) ∈ (0, 1]; the closest pair has 1.
 *
 * Invariant to a global affine intensity change and, because V normalises locally, close to
 * invariant to any locally smooth intensity remapping: features of two modalities are compared
 * with plain SSD. Computed with separable box filters over whole volumes (no per-voxel closures).
 * Spacing is not taken into account: the offsets are voxels, so compute it on an isotropic grid.
 */

/** Options of {@link mindSsc}. */
export interface MindOptions {
  /** Distance d (voxels) from the centre to the six neighbours. Default 2 (ConvexAdam's dilation). */
  readonly dilation?: number;
  /** Patch radius r (voxels): patches of (2r + 1)³. Default 1. */
  readonly radius?: number;
}

/** The six neighbours as (axis, sign). */
const NEIGHBOURS: readonly (readonly [0 | 1 | 2, -1 | 1])[] = [
  [0, -1],
  [1, -1],
  [2, -1],
  [0, 1],
  [1, 1],
  [2, 1],
];

/** The 12 channel pairs (a, b) of neighbours on different axes, lexicographic. */
export const MIND_PAIRS: readonly (readonly [number, number])[] = (() => {
  const pairs: [number, number][] = [];
  for (let a = 0; a < 6; a++) for (let b = a + 1; b < 6; b++) if (b !== a + 3) pairs.push([a, b]);
  return pairs;
})();

/** Linear offsets, per axis, of every index shifted by `shift` and clamped to the grid, times `stride`. */
function shiftedOffsets(n: number, shift: number, stride: number): Int32Array {
  const out = new Int32Array(n);
  for (let t = 0; t < n; t++) out[t] = Math.min(n - 1, Math.max(0, t + shift)) * stride;
  return out;
}

/** In-place box mean of radius r along axis i (contiguous lines; replicate padding). */
function boxAlongI(data: Float32Array, nx: number, lines: number, r: number, line: Float64Array): void {
  const inv = 1 / (2 * r + 1);
  const last = nx - 1;
  for (let l = 0, base = 0; l < lines; l++, base += nx) {
    for (let t = 0; t < nx; t++) line[t] = data[base + t]!;
    let s = 0;
    for (let u = -r; u <= r; u++) s += line[u < 0 ? 0 : u > last ? last : u]!;
    for (let t = 0; t < nx; t++) {
      data[base + t] = s * inv;
      const add = t + r + 1;
      const drop = t - r;
      s += line[add > last ? last : add]! - line[drop < 0 ? 0 : drop]!;
    }
  }
}

/**
 * In-place box mean of radius r along an outer axis (j or k) of a volume seen as `outer` blocks of
 * `len` × `inner` values: running sums over whole rows/planes, so memory is walked sequentially.
 * `copy` holds at least one block; `acc` at least `inner` values.
 */
function boxAlongOuter(
  data: Float32Array,
  len: number,
  inner: number,
  outer: number,
  r: number,
  copy: Float32Array,
  acc: Float64Array,
): void {
  const inv = 1 / (2 * r + 1);
  const last = len - 1;
  const block = len * inner;
  for (let o = 0; o < outer; o++) {
    const base = o * block;
    copy.set(data.subarray(base, base + block));
    acc.fill(0, 0, inner);
    for (let u = -r; u <= r; u++) {
      const src = (u < 0 ? 0 : u > last ? last : u) * inner;
      for (let x = 0; x < inner; x++) acc[x]! += copy[src + x]!;
    }
    for (let t = 0; t < len; t++) {
      const dst = base + t * inner;
      const add = (t + r + 1 > last ? last : t + r + 1) * inner;
      const drop = (t - r < 0 ? 0 : t - r) * inner;
      for (let x = 0; x < inner; x++) {
        const a = acc[x]!;
        data[dst + x] = a * inv;
        acc[x] = a + copy[add + x]! - copy[drop + x]!;
      }
    }
  }
}

/** The options with their defaults; INVALID_ARGUMENT for bad options or a bad image. */
function checkMind(image: GridField, options: MindOptions): { dilation: number; radius: number } {
  const d = options.dilation ?? 2;
  const r = options.radius ?? 1;
  if (!(Number.isInteger(d) && d >= 1 && Number.isInteger(r) && r >= 0)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `MIND needs an integer dilation >= 1 and radius >= 0, got ${d} and ${r}`,
    );
  }
  if (image.channels !== 1) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `MIND is computed on one channel, the field has ${image.channels}`,
    );
  }
  if (image.data.length !== voxelCount(image.grid))
    throw new CuriaError('INVALID_ARGUMENT', 'the image data does not match its grid');
  return { dilation: d, radius: r };
}

/**
 * MIND-SSC features (12 channels, values in (0, 1]) of a one-channel field, on the same grid. See the
 * module comment for the exact definition. Pool the result with `poolField` for coarser grids.
 */
export function mindSsc(image: GridField, options: MindOptions = {}): GridField {
  const { dilation: d, radius: r } = checkMind(image, options);
  const dims = image.grid.dims;
  const [nx, ny, nz] = dims;
  const n = voxelCount(image.grid);
  const strides = [1, nx, nx * ny];
  const identity = [0, 1, 2].map((axis) => shiftedOffsets(dims[axis as 0 | 1 | 2], 0, strides[axis]!));
  // Per neighbour, per axis: the clamped offsets of the shifted image.
  const tables = NEIGHBOURS.map(([axis, sign]) =>
    [0, 1, 2].map((a) => (a === axis ? shiftedOffsets(dims[a], sign * d, strides[a]!) : identity[a]!)),
  );
  const src = image.data;
  const out = new Float32Array(12 * n);
  const line = new Float64Array(nx);
  const copy = r > 0 ? new Float32Array(n) : new Float32Array(0);
  const acc = new Float64Array(r > 0 ? nx * ny : 0);
  MIND_PAIRS.forEach(([a, b], ch) => {
    const [ai, aj, ak] = tables[a]! as [Int32Array, Int32Array, Int32Array];
    const [bi, bj, bk] = tables[b]! as [Int32Array, Int32Array, Int32Array];
    const plane = out.subarray(ch * n, (ch + 1) * n);
    for (let k = 0, q = 0; k < nz; k++) {
      const oak = ak[k]!;
      const obk = bk[k]!;
      for (let j = 0; j < ny; j++) {
        const oa = oak + aj[j]!;
        const ob = obk + bj[j]!;
        for (let i = 0; i < nx; i++, q++) {
          const diff = src[oa + ai[i]!]! - src[ob + bi[i]!]!;
          plane[q] = diff * diff;
        }
      }
    }
    if (r > 0) {
      boxAlongI(plane, nx, ny * nz, r, line);
      boxAlongOuter(plane, ny, nx, nz, r, copy, acc);
      boxAlongOuter(plane, nz, nx * ny, 1, r, copy, acc);
    }
  });
  // Subtract the per-voxel minimum; V = mean of the 12; V̄ = mean of V over the grid. Channel by
  // channel, so every pass walks memory sequentially.
  const min = new Float32Array(n).fill(Infinity);
  for (let c = 0; c < 12; c++) {
    const plane = out.subarray(c * n, (c + 1) * n);
    for (let q = 0; q < n; q++) if (plane[q]! < min[q]!) min[q] = plane[q]!;
  }
  const variance = new Float64Array(n);
  for (let c = 0; c < 12; c++) {
    const plane = out.subarray(c * n, (c + 1) * n);
    for (let q = 0; q < n; q++) {
      const m = plane[q]! - min[q]!;
      plane[q] = m;
      variance[q]! += m;
    }
  }
  let total = 0;
  for (let q = 0; q < n; q++) total += variance[q]! / 12;
  const mean = total / n;
  const lo = 1e-3 * mean;
  const hi = 1e3 * mean;
  // Reuse `variance` for −1/V.
  for (let q = 0; q < n; q++) {
    const v = variance[q]! / 12;
    const clamped = v < lo ? lo : v > hi ? hi : v;
    variance[q] = clamped > 0 ? -1 / clamped : 0;
  }
  for (let c = 0; c < 12; c++) {
    const plane = out.subarray(c * n, (c + 1) * n);
    for (let q = 0; q < n; q++) plane[q] = Math.exp(plane[q]! * variance[q]!);
  }
  return { grid: image.grid, channels: 12, data: out };
}

/** Where MIND-SSC is computed: see {@link selectMindBackend}. */
export interface MindBackend {
  /** `typescript` or `onnx:<provider>`. */
  readonly name: string;
  /** {@link mindSsc} of `image` (same definition, same errors). */
  compute(image: GridField, options?: MindOptions): Promise<GridField>;
}

/** The TypeScript MIND-SSC backend ({@link mindSsc}). */
export const TS_MIND: MindBackend = {
  name: 'typescript',
  compute: (image, options) => Promise.resolve(mindSsc(image, options)),
};

/**
 * MIND-SSC as an ONNX graph: input `image` [Z, Y, X] → `mind` [12, Z, Y, X], symbolic dims. The
 * image is edge-padded by d and sliced once per neighbour (the clamped shifted images); the 12
 * squared pair differences are concatenated, edge-padded by r and averaged by AveragePool((2r+1)³,
 * no padding) — replicate padding of the squared differences exactly as {@link mindSsc}; then
 * M = D − ReduceMin(D), V = ReduceMean(M) clamped to [10⁻³, 10³]·mean(V), exp(−M / V) (1 where V is 0).
 */
export function mindGraph(dilation: number, radius: number): ModelParts {
  const d = dilation;
  const g = new HeadGraph();
  const padded = edgePad(g, g.op('Unsqueeze', ['image', g.int64('axis0', [0])]), d);
  const shifted = NEIGHBOURS.map(([axis, sign]) =>
    shiftedSlice(g, padded, d, [0, 1, 2].map((a) => (a === axis ? sign * d : 0)) as [number, number, number]),
  );
  const squares = MIND_PAIRS.map(([a, b]) => {
    const diff = g.op('Sub', [shifted[a]!, shifted[b]!]);
    return g.op('Mul', [diff, diff]);
  });
  let dist = g.op('Concat', squares, { axis: { i: 0 } });
  if (radius > 0) {
    dist = onBatch(g, edgePad(g, dist, radius), (x) => averagePool(g, x, radius, 1, 0, 0));
  }
  const m = g.op('Sub', [dist, g.op('ReduceMin', [dist], { axes: { ints: [0] }, keepdims: { i: 1 } })]);
  const v = g.op('ReduceMean', [m], { axes: { ints: [0] }, keepdims: { i: 1 } });
  // V̄ axis by axis (rows, then columns, then slices): one float32 sum over all voxels loses
  // ~1e-4 of V̄, which the clamp carries into the features of flat regions.
  let mean = v;
  for (const axis of [3, 2, 1])
    mean = g.op('ReduceMean', [mean], { axes: { ints: [axis] }, keepdims: { i: 1 } });
  const scalar = (hint: string, x: number): string => g.float(hint, Float32Array.of(x), []);
  const lo = g.op('Mul', [mean, scalar('lo', 1e-3)]);
  const hi = g.op('Mul', [mean, scalar('hi', 1e3)]);
  const clamped = g.op('Min', [g.op('Max', [v, lo]), hi]);
  const zero = scalar('zero', 0);
  const factor = g.op('Where', [
    g.op('Greater', [clamped, zero]),
    g.op('Div', [scalar('minus_one', -1), clamped]),
    zero,
  ]);
  g.op('Exp', [g.op('Mul', [m, factor])], {}, 'mind');
  return g.model('mind_ssc', [['image', ['z', 'y', 'x']]], [['mind', [12, 'z', 'y', 'x']]]);
}

/** MIND-SSC on ONNX Runtime: one session per (dilation, radius), kept until {@link OnnxMind.close}. */
export class OnnxMind extends OnnxStep implements MindBackend {
  constructor(opts: OnnxStepOptions = {}) {
    super('MIND-SSC', opts);
  }

  async compute(image: GridField, options: MindOptions = {}): Promise<GridField> {
    const { dilation, radius } = checkMind(image, options);
    const [nx, ny, nz] = image.grid.dims;
    const data = await this.run(
      `${dilation}/${radius}`,
      () => mindGraph(dilation, radius),
      { image: new Tensor('float32', image.data, [nz, ny, nx]) },
      'mind',
    );
    return { grid: image.grid, channels: 12, data };
  }
}

/**
 * The MIND-SSC backend: `'auto'` (default) is ONNX Runtime on CUDA when a CUDA session loads, else
 * on CPU with one thread (unless `threads` is given) — measured faster than the TypeScript kernel
 * (README); `'typescript'` and `'onnx'` (ORT on `executionProviders`, default CPU) force one.
 */
export function selectMindBackend(opts: SelectOptions = {}): Promise<MindBackend & Closable> {
  return selectStepBackend<MindBackend>('mind', opts, TS_MIND, (o) => new OnnxMind(o), probeMind);
}

/** A 2×2×2 run: loads the provider of `b`'s first session (or fails to). */
function probeMind(b: MindBackend): Promise<GridField> {
  return b.compute({ grid: { dims: [2, 2, 2], affine: IDENTITY }, channels: 1, data: new Float32Array(8) });
}
