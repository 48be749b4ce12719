import { CuriaError } from '@curia/errors';
import { HeadGraph } from '@curia/heads';
import type { ModelParts } from '@curia/model';
import { Tensor } from 'onnxruntime-node';

import {
  averagePool,
  onBatch,
  OnnxStep,
  selectStepBackend,
  type Closable,
  type OnnxStepOptions,
  type SelectOptions,
} from './onnx-steps.js';
import type { Dims3 } from './optim-fields.js';
import { boxSmooth, type FloatArray } from './optim-smooth.js';

/** What a box smoothing needs: channel-major volumes, smoothed in place. */
export interface SmoothingInput {
  /** `channels` volumes of `dims`, channel-major, NIfTI order; overwritten with the result. */
  readonly data: FloatArray;
  readonly channels: number;
  readonly dims: Dims3;
  /** Box radius r: windows of (2r+1)³ (default 1). */
  readonly radius?: number;
  /** Passes (default 1; 0 = none). */
  readonly passes?: number;
  /** Apply the transpose of the filter instead (gradients through a smoothing; default false). */
  readonly adjoint?: boolean;
}

/**
 * Normalised box smoothing ({@link boxSmooth}: each output the mean of the in-bounds voxels of its
 * (2r+1)³ window, = AveragePool with count_include_pad 0), `passes` times, of every channel, in
 * place; resolves to `input.data`. The convex stage smooths its displacement with it, Adam its
 * parameters (forward) and gradient (adjoint).
 */
export interface SmoothingBackend {
  /** `typescript` or `onnx:<provider>`. */
  readonly name: string;
  smooth(input: SmoothingInput): Promise<FloatArray>;
}

/** INVALID_ARGUMENT unless the input is consistent; the radius and passes with their defaults. */
function checkSmoothing(input: SmoothingInput): { radius: number; passes: number } {
  const radius = input.radius ?? 1;
  const passes = input.passes ?? 1;
  const { dims, channels } = input;
  if (![radius, passes, channels].every((x) => Number.isInteger(x) && x >= 0) || radius > 16) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `box smoothing: radius (0..16), passes and channels must be non-negative integers, got ${radius}, ${passes}, ${channels}`,
    );
  }
  if (input.data.length !== channels * dims[0] * dims[1] * dims[2]) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `box smoothing: data must hold ${channels}×${dims.join('×')} values, got ${input.data.length}`,
    );
  }
  return { radius, passes };
}

/** The TypeScript smoothing backend ({@link boxSmooth}). */
export const TS_SMOOTHING: SmoothingBackend = {
  name: 'typescript',
  smooth: (input) => {
    const { radius, passes } = checkSmoothing(input);
    return Promise.resolve(
      boxSmooth(input.data, input.channels, input.dims, radius, passes, input.adjoint ?? false),
    );
  },
};

/**
 * Box smoothing as an ONNX graph: `x` [C, Z, Y, X] → `y`, symbolic dims and channels. Forward:
 * `passes` × AveragePool((2r+1)³, pads r, count_include_pad 0). Adjoint: the transpose of that map,
 * `passes` × P(y / P(1)) with P the AveragePool that counts the padding (zeros) — P(1) is the
 * in-bounds fraction of every window, so P(y / P(1)) = Σ over the windows holding a voxel of y / count.
 */
export function boxSmoothGraph(radius: number, passes: number, adjoint: boolean): ModelParts {
  const g = new HeadGraph();
  onBatch(
    g,
    'x',
    (x5) => {
      if (!adjoint) return averagePool(g, x5, radius, passes);
      const ones = g.op('Expand', [g.float('one', Float32Array.of(1), []), g.op('Shape', [x5])]);
      const inside = averagePool(g, ones, radius, 1, 1);
      let x = x5;
      for (let p = 0; p < passes; p++) x = averagePool(g, g.op('Div', [x, inside]), radius, 1, 1);
      return x;
    },
    'y',
  );
  return g.model('box_smooth', [['x', ['c', 'z', 'y', 'x']]], [['y', ['c', 'z', 'y', 'x']]]);
}

/**
 * Box smoothing on ONNX Runtime (float32: float64 data is rounded on the way in), one session per
 * (radius, passes, adjoint), kept until {@link OnnxSmoothing.close}.
 */
export class OnnxSmoothing extends OnnxStep implements SmoothingBackend {
  constructor(opts: OnnxStepOptions = {}) {
    super('box smoothing', opts);
  }

  async smooth(input: SmoothingInput): Promise<FloatArray> {
    const { radius, passes } = checkSmoothing(input);
    const { data, channels, dims } = input;
    if (radius === 0 || passes === 0 || data.length === 0) return data;
    const adjoint = input.adjoint ?? false;
    const x = data instanceof Float32Array ? data : Float32Array.from(data);
    const y = await this.run(
      `${radius}/${passes}/${adjoint}`,
      () => boxSmoothGraph(radius, passes, adjoint),
      { x: new Tensor('float32', x, [channels, dims[2], dims[1], dims[0]]) },
      'y',
    );
    data.set(y);
    return data;
  }
}

/** A 2×2×2 one-channel run: loads the provider of `b`'s first session (or fails to). */
function probeSmoothing(b: SmoothingBackend): Promise<FloatArray> {
  return b.smooth({ data: new Float32Array(8), channels: 1, dims: [2, 2, 2] });
}

/**
 * The box-smoothing backend: `'auto'` (default) is ONNX Runtime on CUDA when a CUDA session loads,
 * else on CPU with one thread (unless `threads` is given) — measured faster than the TypeScript
 * kernel (README); `'typescript'` and `'onnx'` (ORT on `executionProviders`, default CPU) force one.
 */
export function selectSmoothingBackend(opts: SelectOptions = {}): Promise<SmoothingBackend & Closable> {
  return selectStepBackend<SmoothingBackend>(
    'smoothing',
    opts,
    TS_SMOOTHING,
    (o) => new OnnxSmoothing(o),
    probeSmoothing,
  );
}
