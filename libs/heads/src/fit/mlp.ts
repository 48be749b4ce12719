import { yieldAndCheck } from '../errors.js';
import { Rng } from '../math/rng.js';
import { fitStandardizer, standardizeRows, type FeatureMatrix } from './data.js';

/** Options of {@link fitMlp}. */
export interface MlpOptions {
  readonly task: 'classification' | 'regression';
  /** Output width: classes for classification, 1 for regression. */
  readonly outputs: number;
  readonly hidden: readonly number[];
  readonly learningRate: number;
  readonly batchSize: number;
  readonly maxEpochs: number;
  /** Epochs without validation improvement before stopping. */
  readonly patience: number;
  readonly validationFraction: number;
  /** L2 weight decay added to the gradient (not on biases). */
  readonly l2: number;
  readonly seed: number;
  readonly signal?: AbortSignal;
}

/** A dense layer: weight [out, in] row-major. */
export interface DenseLayer {
  readonly weight: Float64Array;
  readonly bias: Float64Array;
}

/** A fitted MLP in raw feature (and target) units. */
export interface MlpFit {
  /** Layer widths [in, hidden..., out]. */
  readonly sizes: number[];
  readonly layers: DenseLayer[];
  readonly epochs: number;
  readonly bestValidationLoss: number;
}

function forward(
  layers: DenseLayer[],
  sizes: number[],
  x: Float64Array,
  xo: number,
  acts: Float64Array[],
): void {
  let inp = x;
  let io = xo;
  for (let l = 0; l < layers.length; l++) {
    const { weight, bias } = layers[l]!;
    const nin = sizes[l]!;
    const out = acts[l + 1]!;
    for (let o = 0; o < sizes[l + 1]!; o++) {
      let s = bias[o]!;
      const wo = o * nin;
      for (let i = 0; i < nin; i++) s += weight[wo + i]! * inp[io + i]!;
      out[o] = l + 1 < layers.length && s < 0 ? 0 : s;
    }
    inp = out;
    io = 0;
  }
}

/** Loss of the output activations; writes dLoss/dOutput into `grad`. */
function lossAndGrad(
  out: Float64Array,
  task: MlpOptions['task'],
  yCls: number,
  yReg: number,
  grad: Float64Array,
): number {
  if (task === 'regression') {
    const d = out[0]! - yReg;
    grad[0] = d;
    return 0.5 * d * d;
  }
  let m = -Infinity;
  for (let c = 0; c < out.length; c++) m = Math.max(m, out[c]!);
  let se = 0;
  for (let c = 0; c < out.length; c++) se += Math.exp(out[c]! - m);
  const lse = m + Math.log(se);
  for (let c = 0; c < out.length; c++) grad[c] = Math.exp(out[c]! - lse) - (c === yCls ? 1 : 0);
  return lse - out[yCls]!;
}

/**
 * Trains Linear-ReLU-…-Linear on rows `idx` with Adam and early stopping on a seeded validation
 * split; standardisation of inputs (and regression targets) is folded into the returned layers.
 */
export async function fitMlp(
  x: FeatureMatrix,
  idx: readonly number[],
  labels: Int32Array | Float64Array,
  opts: MlpOptions,
): Promise<MlpFit> {
  const rng = new Rng(opts.seed);
  const sizes = [x.cols, ...opts.hidden, opts.outputs];
  const st = fitStandardizer(x, idx);
  const order = rng.shuffle([...idx]);
  const nVal = order.length >= 10 ? Math.max(1, Math.round(order.length * opts.validationFraction)) : 0;
  const valIdx = order.slice(0, nVal);
  const trainIdx = order.slice(nVal);
  const xsTrain = standardizeRows(x, st, trainIdx);
  const xsVal = standardizeRows(x, st, valIdx);
  let yMean = 0;
  let yStd = 1;
  if (opts.task === 'regression') {
    for (const i of trainIdx) yMean += labels[i]!;
    yMean /= trainIdx.length;
    let v = 0;
    for (const i of trainIdx) v += (labels[i]! - yMean) ** 2;
    yStd = Math.sqrt(v / trainIdx.length) || 1;
  }
  const yOf = (i: number): number => (labels[i]! - yMean) / yStd;
  const layers: DenseLayer[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const nin = sizes[l]!;
    const bound = 1 / Math.sqrt(nin);
    layers.push({
      weight: Float64Array.from({ length: sizes[l + 1]! * nin }, () => rng.uniform(-bound, bound)),
      bias: Float64Array.from({ length: sizes[l + 1]! }, () => rng.uniform(-bound, bound)),
    });
  }
  const grads = layers.map((L) => ({
    weight: new Float64Array(L.weight.length),
    bias: new Float64Array(L.bias.length),
  }));
  const m1 = layers.map((L) => ({
    weight: new Float64Array(L.weight.length),
    bias: new Float64Array(L.bias.length),
  }));
  const m2 = layers.map((L) => ({
    weight: new Float64Array(L.weight.length),
    bias: new Float64Array(L.bias.length),
  }));
  const acts = sizes.map((s) => new Float64Array(s));
  const deltas = sizes.map((s) => new Float64Array(s));
  const lossOn = (xs: Float64Array, rows: number[]): number => {
    let s = 0;
    const g = new Float64Array(opts.outputs);
    for (let r = 0; r < rows.length; r++) {
      forward(layers, sizes, xs, r * x.cols, acts);
      s += lossAndGrad(acts[acts.length - 1]!, opts.task, labels[rows[r]!]!, yOf(rows[r]!), g);
    }
    return s / Math.max(1, rows.length);
  };
  let best = Infinity;
  let bestLayers = layers.map((L) => ({
    weight: Float64Array.from(L.weight),
    bias: Float64Array.from(L.bias),
  }));
  let sinceBest = 0;
  let step = 0;
  let epoch = 0;
  const b1 = 0.9;
  const b2 = 0.999;
  const positions = Array.from(trainIdx.keys());
  for (epoch = 1; epoch <= opts.maxEpochs; epoch++) {
    await yieldAndCheck(opts.signal, 'MLP fitting');
    rng.shuffle(positions);
    for (let start = 0; start < positions.length; start += opts.batchSize) {
      const batch = positions.slice(start, start + opts.batchSize);
      for (const g of grads) {
        g.weight.fill(0);
        g.bias.fill(0);
      }
      for (const pos of batch) {
        const xo = pos * x.cols;
        // Backprop reads the layer-0 input from acts[0].
        acts[0]!.set(xsTrain.subarray(xo, xo + x.cols));
        forward(layers, sizes, xsTrain, xo, acts);
        lossAndGrad(
          acts[acts.length - 1]!,
          opts.task,
          labels[trainIdx[pos]!]!,
          yOf(trainIdx[pos]!),
          deltas[deltas.length - 1]!,
        );
        for (let l = layers.length - 1; l >= 0; l--) {
          const nin = sizes[l]!;
          const nout = sizes[l + 1]!;
          const dOut = deltas[l + 1]!;
          const aIn = acts[l]!;
          const gw = grads[l]!.weight;
          const gb = grads[l]!.bias;
          const w = layers[l]!.weight;
          const dIn = deltas[l]!;
          dIn.fill(0);
          for (let o = 0; o < nout; o++) {
            const d = dOut[o]!;
            if (d === 0) continue;
            gb[o]! += d;
            const wo = o * nin;
            for (let i = 0; i < nin; i++) {
              gw[wo + i]! += d * aIn[i]!;
              dIn[i]! += d * w[wo + i]!;
            }
          }
          if (l > 0) for (let i = 0; i < nin; i++) if (aIn[i]! <= 0) dIn[i] = 0;
        }
      }
      step++;
      const lr = (opts.learningRate * Math.sqrt(1 - b2 ** step)) / (1 - b1 ** step);
      const inv = 1 / batch.length;
      layers.forEach((L, l) => {
        for (const key of ['weight', 'bias'] as const) {
          const p = L[key];
          const g = grads[l]![key];
          const a = m1[l]![key];
          const v = m2[l]![key];
          const decay = key === 'weight' ? opts.l2 : 0;
          for (let i = 0; i < p.length; i++) {
            const gi = g[i]! * inv + decay * p[i]!;
            a[i] = b1 * a[i]! + (1 - b1) * gi;
            v[i] = b2 * v[i]! + (1 - b2) * gi * gi;
            p[i]! -= (lr * a[i]!) / (Math.sqrt(v[i]!) + 1e-8);
          }
        }
      });
    }
    const val = nVal > 0 ? lossOn(xsVal, valIdx) : lossOn(xsTrain, trainIdx);
    if (val < best - 1e-7) {
      best = val;
      bestLayers = layers.map((L) => ({
        weight: Float64Array.from(L.weight),
        bias: Float64Array.from(L.bias),
      }));
      sinceBest = 0;
    } else if (++sinceBest >= opts.patience) {
      break;
    }
  }
  // Fold input standardisation into the first layer and target scaling into the last.
  const first = bestLayers[0]!;
  const nin = sizes[0]!;
  for (let o = 0; o < sizes[1]!; o++) {
    let shift = 0;
    for (let i = 0; i < nin; i++) {
      const w = first.weight[o * nin + i]! / st.std[i]!;
      first.weight[o * nin + i] = w;
      shift += w * st.mean[i]!;
    }
    first.bias[o]! -= shift;
  }
  if (opts.task === 'regression') {
    const last = bestLayers[bestLayers.length - 1]!;
    for (let i = 0; i < last.weight.length; i++) last.weight[i]! *= yStd;
    for (let i = 0; i < last.bias.length; i++) last.bias[i] = last.bias[i]! * yStd + yMean;
  }
  return { sizes, layers: bestLayers, epochs: Math.min(epoch, opts.maxEpochs), bestValidationLoss: best };
}

/** Applies a fitted MLP to rows of `x`: [rows.length, outputs]. */
export function predictMlp(fit: MlpFit, x: FeatureMatrix, rows: readonly number[]): Float64Array {
  const outW = fit.sizes[fit.sizes.length - 1]!;
  const acts = fit.sizes.map((s) => new Float64Array(s));
  const xs = x.data instanceof Float64Array ? x.data : Float64Array.from(x.data);
  const out = new Float64Array(rows.length * outW);
  rows.forEach((r, k) => {
    forward(fit.layers, fit.sizes, xs, r * x.cols, acts);
    out.set(acts[acts.length - 1]!, k * outW);
  });
  return out;
}
