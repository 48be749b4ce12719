import { CuriaError } from '@curia/errors';

/**
 * Separable 1D resampling weights for one (input size, output size) pair: output sample `o`
 * reads inputs `starts[o] .. starts[o] + counts[o] - 1` with `weights[o * taps + t]`.
 */
export interface AxisWeights {
  readonly inSize: number;
  readonly outSize: number;
  /** Row length in `weights` (the widest window). */
  readonly taps: number;
  readonly starts: Int32Array;
  readonly counts: Int32Array;
  readonly weights: Float64Array;
}

/** Keys cubic convolution kernel with a = -0.5 (the antialiased path of torch/PIL). */
export function cubicAa(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/**
 * Weights of torch `F.interpolate(mode='bicubic', align_corners=False, antialias=True)` along one
 * axis (`_compute_indices_min_size_weights_aa`): scale = in/out, support = 2 * max(1, scale),
 * centre (o + 0.5) * scale, window cut at the borders, weights renormalised to sum 1.
 */
export function computeAxisWeights(inSize: number, outSize: number): AxisWeights {
  if (!(Number.isInteger(inSize) && inSize > 0 && Number.isInteger(outSize) && outSize > 0)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `resize sizes must be positive integers (got ${inSize} -> ${outSize})`,
    );
  }
  const scale = inSize / outSize;
  const support = scale >= 1 ? 2 * scale : 2;
  const invScale = scale >= 1 ? 1 / scale : 1;
  const taps = Math.ceil(support) * 2 + 1;
  const starts = new Int32Array(outSize);
  const counts = new Int32Array(outSize);
  const weights = new Float64Array(outSize * taps);
  for (let o = 0; o < outSize; o++) {
    const center = scale * (o + 0.5);
    // Math.trunc mirrors the C++ static_cast<int64_t>.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xsize = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    const base = o * taps;
    for (let j = 0; j < xsize; j++) {
      const w = cubicAa((j + xmin - center + 0.5) * invScale);
      weights[base + j] = w;
      total += w;
    }
    if (total !== 0) for (let j = 0; j < xsize; j++) weights[base + j]! /= total;
    // Drop exact-zero taps at the window ends (e.g. all but one when in == out): the sums are
    // unchanged bit for bit, and an unscaled axis becomes a copy.
    let lo = 0;
    let hi = xsize;
    while (hi - lo > 1 && weights[base + lo] === 0) lo++;
    while (hi - lo > 1 && weights[base + hi - 1] === 0) hi--;
    if (lo > 0) weights.copyWithin(base, base + lo, base + hi);
    weights.fill(0, base + hi - lo, base + taps);
    starts[o] = xmin + lo;
    counts[o] = hi - lo;
  }
  return { inSize, outSize, taps, starts, counts, weights };
}

const cache = new Map<string, AxisWeights>();
const CACHE_LIMIT = 64;

/** {@link computeAxisWeights}, memoised per (in, out) pair (a small bounded cache). */
export function axisWeights(inSize: number, outSize: number): AxisWeights {
  const key = `${inSize}>${outSize}`;
  let w = cache.get(key);
  if (!w) {
    if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
    w = computeAxisWeights(inSize, outSize);
    cache.set(key, w);
  }
  return w;
}

/** Reusable buffers for {@link resizeBicubicAa}, grown on demand. */
export class ResizeScratch {
  tmp = new Float64Array(0);
  ensure(n: number): Float64Array {
    if (this.tmp.length < n) this.tmp = new Float64Array(n);
    return this.tmp;
  }
}

/** True when an axis maps sample o to sample o with weight exactly 1 (in == out). */
function isIdentity(w: AxisWeights): boolean {
  if (w.inSize !== w.outSize) return false;
  for (let o = 0; o < w.outSize; o++) {
    if (w.counts[o] !== 1 || w.starts[o] !== o || w.weights[o * w.taps] !== 1) return false;
  }
  return true;
}

/**
 * Resizes a row-major `inH x inW` image to `outH x outW` with torch's antialiased bicubic
 * semantics: a horizontal pass into a scratch buffer, then a vertical pass that computes each
 * output value once from its few source rows (each output row written once, source rows read
 * contiguously). An unscaled axis is a plain copy (bit-identical to multiplying by its single
 * weight 1). Writes into and returns `out`.
 */
export function resizeBicubicAa(
  src: Float64Array,
  inH: number,
  inW: number,
  outH: number,
  outW: number,
  out: Float64Array = new Float64Array(outH * outW),
  scratch: ResizeScratch = new ResizeScratch(),
): Float64Array {
  if (src.length < inH * inW || out.length < outH * outW) {
    throw new CuriaError('INTERNAL', `resize buffers too small for ${inH}x${inW} -> ${outH}x${outW}`);
  }
  const wx = axisWeights(inW, outW);
  const wy = axisWeights(inH, outH);
  const idY = isIdentity(wy);
  // With an identity vertical pass the horizontal pass can write straight into `out`.
  const tmp = idY ? out : scratch.ensure(inH * outW);
  if (isIdentity(wx)) tmp.set(src.subarray(0, inH * inW));
  else horizontalPass(src, inH, inW, outW, wx, tmp);
  if (!idY) verticalPass(tmp, outW, wy, out);
  return out;
}

function horizontalPass(
  src: Float64Array,
  inH: number,
  inW: number,
  outW: number,
  wx: AxisWeights,
  tmp: Float64Array,
): void {
  const { starts: xs, counts: xc, weights: xw, taps: xt } = wx;
  for (let y = 0; y < inH; y++) {
    const rowIn = y * inW;
    const rowOut = y * outW;
    for (let o = 0; o < outW; o++) {
      const s = rowIn + xs[o]!;
      const n = xc[o]!;
      const wb = o * xt;
      let acc = 0;
      for (let t = 0; t < n; t++) acc += xw[wb + t]! * src[s + t]!;
      tmp[rowOut + o] = acc;
    }
  }
}

function verticalPass(tmp: Float64Array, outW: number, wy: AxisWeights, out: Float64Array): void {
  const { starts: ys, counts: yc, weights: yw, taps: yt, outSize: outH } = wy;
  for (let o = 0; o < outH; o++) {
    const dst = o * outW;
    const n = yc[o]!;
    const wb = o * yt;
    const r0 = ys[o]! * outW;
    // Upsampling windows have <= 4 taps: unrolled, each output is summed in the same order as the
    // generic loop (so results do not depend on the path).
    if (n === 4) {
      const w0 = yw[wb]!;
      const w1 = yw[wb + 1]!;
      const w2 = yw[wb + 2]!;
      const w3 = yw[wb + 3]!;
      const r1 = r0 + outW;
      const r2 = r1 + outW;
      const r3 = r2 + outW;
      for (let x = 0; x < outW; x++) {
        out[dst + x] = w0 * tmp[r0 + x]! + w1 * tmp[r1 + x]! + w2 * tmp[r2 + x]! + w3 * tmp[r3 + x]!;
      }
    } else if (n === 3) {
      const w0 = yw[wb]!;
      const w1 = yw[wb + 1]!;
      const w2 = yw[wb + 2]!;
      const r1 = r0 + outW;
      const r2 = r1 + outW;
      for (let x = 0; x < outW; x++) {
        out[dst + x] = w0 * tmp[r0 + x]! + w1 * tmp[r1 + x]! + w2 * tmp[r2 + x]!;
      }
    } else {
      for (let x = 0; x < outW; x++) {
        let acc = 0;
        for (let t = 0, r = r0 + x; t < n; t++, r += outW) acc += yw[wb + t]! * tmp[r]!;
        out[dst + x] = acc;
      }
    }
  }
}
