import { CuriaError } from '@curia/errors';
import { HeadGraph } from '@curia/heads';
import type { ModelParts } from '@curia/model';
import { Tensor } from 'onnxruntime-node';

import {
  onBatch,
  OnnxStep,
  selectStepBackend,
  withOpset,
  type Closable,
  type OnnxStepOptions,
  type SelectOptions,
} from './onnx-steps.js';
import { lerpCell, newTrilinearCell, trilinearCell, type Dims3 } from './optim-fields.js';
import type { FloatArray } from './optim-smooth.js';

/** What a warp needs: a multi-channel field and a dense displacement on the same voxel grid. */
export interface WarpInput {
  /** `channels` volumes of `dims`, channel-major, NIfTI order. */
  readonly data: FloatArray;
  readonly channels: number;
  readonly dims: Dims3;
  /** 3 channels (x, y, z) of `dims`: the displacement in voxels. */
  readonly displacement: FloatArray;
}

/**
 * Warping on a voxel grid: `out[c](v) = data[c](v + u(v))`, trilinear, positions clamped to the grid
 * (edge values continue outside; {@link trilinear}'s convention, the one of the optimisers' moving
 * features and displacement fields). The result has the element type of `data`.
 */
export interface WarpBackend {
  /** `typescript` or `onnx:<provider>`. */
  readonly name: string;
  warp(input: WarpInput): Promise<FloatArray>;
}

/** INVALID_ARGUMENT unless the input is consistent. */
function checkWarp(input: WarpInput): void {
  const { dims, channels } = input;
  const n = dims[0] * dims[1] * dims[2];
  if (!(Number.isInteger(channels) && channels >= 1) || dims.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new CuriaError('INVALID_ARGUMENT', 'warp: channels and dims must be positive integers');
  }
  if (input.data.length !== channels * n || input.displacement.length !== 3 * n) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `warp: data must hold ${channels}×${dims.join('×')} values and the displacement 3×${dims.join('×')} (got ${input.data.length}, ${input.displacement.length})`,
    );
  }
}

/** The TypeScript reference of {@link WarpBackend}: one trilinear cell per voxel, all channels. */
export function warpVoxelsTs(input: WarpInput): FloatArray {
  checkWarp(input);
  const { data, channels, dims, displacement: u } = input;
  const [nx, ny, nz] = dims;
  const n = nx * ny * nz;
  const out = data instanceof Float64Array ? new Float64Array(channels * n) : new Float32Array(channels * n);
  const cell = newTrilinearCell();
  for (let k = 0, v = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, v++) {
        trilinearCell(dims, i + u[v]!, j + u[n + v]!, k + u[2 * n + v]!, cell);
        for (let c = 0, o = 0; c < channels; c++, o += n) out[o + v] = lerpCell(data, o, cell);
      }
    }
  }
  return out;
}

/** The TypeScript warp backend ({@link warpVoxelsTs}). */
export const TS_WARP: WarpBackend = {
  name: 'typescript',
  warp: (input) => Promise.resolve(warpVoxelsTs(input)),
};

/** ONNX opset of the warp graph: GridSample takes 5-D (volumetric) input from opset 20. */
export const WARP_GRAPH_OPSET = 20;

/**
 * The warp as an ONNX graph (opset 20): `data` [C, Z, Y, X] and `displacement` [3, Z, Y, X] →
 * `warped` [C, Z, Y, X], symbolic dims. Per axis the voxel coordinates (Range over the axis's
 * length) plus the displacement, clamped to [0, n − 1] (Clip) and mapped to GridSample's normalised
 * coordinates with align_corners = 1 (−1 at voxel 0, +1 at voxel n − 1); then GridSample(mode
 * 'linear'). The clamp reproduces the TypeScript edge continuation exactly, so the default padding
 * mode never contributes (beyond float32 rounding at the faces).
 */
export function warpGraph(): ModelParts {
  const g = new HeadGraph();
  const scalar = (hint: string, x: number): string => g.float(hint, Float32Array.of(x), []);
  const zero = scalar('zero', 0);
  const one = scalar('one', 1);
  const two = scalar('two', 2);
  const shape = g.op('Shape', ['displacement']);
  const coords = [0, 1, 2].map((c) => {
    const axis = 3 - c; // tensor axis of voxel axis c
    const len = g.op('Squeeze', [g.op('Gather', [shape, g.int64('dim', [axis])]), g.int64('axis0', [0])]);
    const n = g.op('Cast', [len], { to: { i: 1 } }); // FLOAT
    const hi = g.op('Sub', [n, one]);
    const ramp = g.op('Unsqueeze', [
      g.op('Range', [zero, n, one]),
      g.int64(
        'axes',
        [0, 1, 2, 3].filter((a) => a !== axis),
      ),
    ]);
    const u = g.op('Slice', [
      'displacement',
      g.int64('start', [c]),
      g.int64('end', [c + 1]),
      g.int64('axis0', [0]),
    ]);
    const pos = g.op('Clip', [g.op('Add', [ramp, u]), zero, hi]);
    const scale = g.op('Div', [two, g.op('Max', [hi, one])]);
    return g.op('Unsqueeze', [g.op('Sub', [g.op('Mul', [pos, scale]), one]), g.int64('last', [4])]);
  });
  const grid = g.op('Concat', coords, { axis: { i: 4 } });
  onBatch(g, 'data', (x5) => g.op('GridSample', [x5, grid], { align_corners: { i: 1 } }), 'warped');
  return withOpset(
    g.model(
      'voxel_warp',
      [
        ['data', ['c', 'z', 'y', 'x']],
        ['displacement', [3, 'z', 'y', 'x']],
      ],
      [['warped', ['c', 'z', 'y', 'x']]],
    ),
    WARP_GRAPH_OPSET,
  );
}

/** The warp on ONNX Runtime (float32), one session, kept until {@link OnnxWarp.close}. */
export class OnnxWarp extends OnnxStep implements WarpBackend {
  constructor(opts: OnnxStepOptions = {}) {
    super('warp', opts);
  }

  async warp(input: WarpInput): Promise<FloatArray> {
    checkWarp(input);
    const { data, channels, dims, displacement } = input;
    const f32 = (a: FloatArray): Float32Array => (a instanceof Float32Array ? a : Float32Array.from(a));
    const shape = [dims[2], dims[1], dims[0]];
    const out = await this.run(
      'warp',
      warpGraph,
      {
        data: new Tensor('float32', f32(data), [channels, ...shape]),
        displacement: new Tensor('float32', f32(displacement), [3, ...shape]),
      },
      'warped',
    );
    return data instanceof Float64Array ? Float64Array.from(out) : out;
  }
}

/** A 2×2×2 one-channel run: loads the provider of `b`'s session (or fails to). */
function probeWarp(b: WarpBackend): Promise<FloatArray> {
  return b.warp({
    data: new Float32Array(8),
    channels: 1,
    dims: [2, 2, 2],
    displacement: new Float32Array(24),
  });
}

/**
 * The warp backend: `'auto'` (default) is ONNX Runtime on CUDA when a CUDA session loads, else
 * TypeScript; `'typescript'` and `'onnx'` (ORT on `executionProviders`, default CPU) force one.
 */
export function selectWarpBackend(opts: SelectOptions = {}): Promise<WarpBackend & Closable> {
  return selectStepBackend<WarpBackend>('warp', opts, TS_WARP, (o) => new OnnxWarp(o), probeWarp);
}
