import { CuriaError } from '@curia/errors';
import { HeadGraph } from '@curia/heads';
import { createProviderSession, encodeModel, type ExecutionProviderName } from '@curia/model';
import { cpuBudget } from '@curia/tensors';
import { Tensor, type InferenceSession } from 'onnxruntime-node';

import { checkSegmenter, kernelSize, type SegmenterWeights } from './segmenter.js';

/** Options of {@link SegmenterRunner.create}. */
export interface SegmenterRunnerOptions {
  /** Token grid side G. */
  readonly grid: number;
  /** Providers in preference order (default cpu). */
  readonly executionProviders?: readonly ExecutionProviderName[];
  /** ORT intra-op threads (default: the CPU budget). */
  readonly threads?: number;
}

/**
 * The ONNX graph of a segmentation head: tokens [S, G·G, D] → subtract the centre → [S, D, G, G]
 * → Conv (K × D × ks × ks, zero padding) → scores [S, K, G, G].
 */
export function segmenterGraph(w: SegmenterWeights, grid: number) {
  checkSegmenter(w);
  const k = w.classes.length + 1;
  const ks = kernelSize(w.kind);
  const pad = (ks - 1) / 2;
  const g = new HeadGraph();
  const centred = g.op('Sub', ['tokens', g.float('center', w.center, [w.dim])]);
  const grid4 = g.op('Reshape', [centred, g.int64('grid_shape', [-1, grid, grid, w.dim])]);
  const chw = g.op('Transpose', [grid4], { perm: { ints: [0, 3, 1, 2] } });
  g.op(
    'Conv',
    [chw, g.float('kernel', w.kernel, [k, w.dim, ks, ks]), g.float('bias', w.bias, [k])],
    { kernel_shape: { ints: [ks, ks] }, pads: { ints: [pad, pad, pad, pad] } },
    'scores',
  );
  return g.model(
    'segmenter',
    [['tokens', ['slices', grid * grid, w.dim]]],
    [['scores', ['slices', k, grid, grid]]],
  );
}

/** Runs a segmentation head's graph on ONNX Runtime (CPU, or CUDA when asked and present). */
export class SegmenterRunner {
  private constructor(
    private readonly session: InferenceSession,
    readonly weights: SegmenterWeights,
    readonly grid: number,
    /** The provider that loaded the graph. */
    readonly provider: ExecutionProviderName,
  ) {}

  /** Builds the graph and its session. */
  static async create(w: SegmenterWeights, o: SegmenterRunnerOptions): Promise<SegmenterRunner> {
    const parts = segmenterGraph(w, o.grid);
    const { session, provider } = await createProviderSession(
      encodeModel(parts),
      {
        intraOpNumThreads: o.threads ?? cpuBudget(),
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        logSeverityLevel: 3,
      },
      o.executionProviders ?? ['cpu'],
    );
    return new SegmenterRunner(session, w, o.grid, provider);
  }

  /** Class scores [S, K, G, G] of S slices' tokens [S, G·G, D] (F32). */
  async scores(tokens: Float32Array, slices: number): Promise<Float32Array> {
    const { dim } = this.weights;
    const g = this.grid;
    if (tokens.length !== slices * g * g * dim) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `tokens hold ${tokens.length} values; ${slices} slices of ${g}×${g}×${dim} need ${slices * g * g * dim}`,
      );
    }
    const out = await this.session.run({ tokens: new Tensor('float32', tokens, [slices, g * g, dim]) });
    const s = out.scores;
    if (!s || !(s.data instanceof Float32Array))
      throw new CuriaError('INTERNAL', 'segmentation graph returned no float32 scores');
    return s.data;
  }

  /** Releases the session. */
  async close(): Promise<void> {
    await this.session.release();
  }
}
