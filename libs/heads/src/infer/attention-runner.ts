import { CuriaError, isCuriaError } from '@curia/errors';
import { encodeModel } from '@curia/model';
import { cpuBudget } from '@curia/tensors';
import { InferenceSession, Tensor } from 'onnxruntime-node';

import { throwIfAborted } from '../errors.js';
import {
  ATTENTION_LN_EPS,
  nonZeroRows,
  type AttentionModuleWeights,
  type MhaWeights,
} from '../math/attention.js';
import { layerNormRows, linear } from '../math/dense.js';
import {
  ATTN_IO,
  crossGraph,
  selfKeyValueGraph,
  selfQueryGraph,
  type SelfAttentionImpl,
} from '../onnx/attention-graphs.js';

/** Options of {@link OnnxAttentionModule.create}. */
export interface OnnxAttentionOptions {
  /** ORT intra-op threads per session (default: `cpuBudget()`, cores capped by a cgroup CPU limit). */
  readonly intraOpThreads?: number;
  /**
   * Self-attention query rows per ORT run (default 2048). Cancellation is checked between runs,
   * so this bounds how long an aborted call keeps computing (~0.5 s at D = 768, 19 200 tokens).
   */
  readonly chunkRows?: number;
  /**
   * Self-attention kernel (default {@link DEFAULT_SELF_ATTENTION}). `standard` needs only
   * ai.onnx operators; keep chunkRows ≤ 512 with it (scores are [heads, chunkRows, L]).
   */
  readonly selfAttention?: SelfAttentionImpl;
}

/** Default self-attention kernel. */
export const DEFAULT_SELF_ATTENTION: SelfAttentionImpl = 'mha';

interface SelfBlock {
  readonly kind: 'self';
  readonly kv: InferenceSession;
  readonly q: InferenceSession;
  /** Output row of a padding token (see {@link paddingRow}). */
  readonly padRow: Float32Array;
}
interface CrossBlock {
  readonly kind: 'cross';
  readonly session: InferenceSession;
  readonly numQueries: number;
}
type Block = SelfBlock | CrossBlock;

/**
 * Self-attention output of a padding (all-zero) token: Curia lets padding attend to padding only,
 * and every padding key/value is the projection bias, so the context is b_v and the row is
 * LayerNorm(0 + W_o·b_v + b_o) whatever the volume.
 */
export function paddingRow(w: MhaWeights, dim: number): Float32Array {
  const bv = w.inProjBias.subarray(2 * dim, 3 * dim);
  const row = linear(bv, 1, dim, w.outProjWeight, w.outProjBias, dim);
  layerNormRows(row, 1, dim, w.normWeight, w.normBias, ATTENTION_LN_EPS);
  return row;
}

function compact(x: Float32Array, valid: Uint8Array, nv: number, dim: number): Float32Array {
  const out = new Float32Array(nv * dim);
  let k = 0;
  for (let r = 0; r < valid.length; r++) {
    if (!valid[r]) continue;
    out.set(x.subarray(r * dim, (r + 1) * dim), k * dim);
    k++;
  }
  return out;
}

function countValid(valid: Uint8Array): number {
  let n = 0;
  for (const v of valid) n += v;
  return n;
}

async function session(parts: Parameters<typeof encodeModel>[0], threads: number): Promise<InferenceSession> {
  return InferenceSession.create(encodeModel(parts), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
    logSeverityLevel: 3,
  });
}

function float32Output(r: InferenceSession.ReturnType, name: string): Float32Array {
  const t = r[name];
  if (!t || !(t.data instanceof Float32Array))
    throw new CuriaError('INTERNAL', `attention graph did not return float32 '${name}'`);
  return t.data;
}

/**
 * Curia's `AttentionModule` (ordered self / cross blocks, then the mean over rows) as ONNX
 * graphs run by onnxruntime-node. Built once per head and reused. Same function as
 * `attentionModuleForward` (the TypeScript reference): padding rows are re-detected before
 * every block and only non-padding rows enter the graphs.
 */
export class OnnxAttentionModule {
  private constructor(
    readonly dim: number,
    private readonly blocks: readonly Block[],
    private readonly chunkRows: number,
  ) {}

  /** Builds and loads the graphs of every block. */
  static async create(
    m: AttentionModuleWeights,
    opts: OnnxAttentionOptions = {},
  ): Promise<OnnxAttentionModule> {
    const threads = opts.intraOpThreads ?? cpuBudget();
    const chunkRows = opts.chunkRows ?? 2048;
    if (!Number.isInteger(chunkRows) || chunkRows < 1)
      throw new CuriaError('INVALID_ARGUMENT', `chunkRows must be a positive integer, got ${chunkRows}`);
    const impl = opts.selfAttention ?? DEFAULT_SELF_ATTENTION;
    const d = m.dim;
    const blocks: Block[] = [];
    try {
      for (const b of m.blocks) {
        if (b === 'self') {
          const w = m.self!;
          const spec = { w, dim: d, numHeads: m.numHeads, impl };
          blocks.push({
            kind: 'self',
            kv: await session(selfKeyValueGraph(spec), threads),
            q: await session(selfQueryGraph(spec), threads),
            padRow: paddingRow(w, d),
          });
        } else {
          const w = m.cross!;
          blocks.push({
            kind: 'cross',
            session: await session(crossGraph(w, w.learnedQueries, w.numQueries, d, m.numHeads), threads),
            numQueries: w.numQueries,
          });
        }
      }
    } catch (e) {
      await releaseBlocks(blocks);
      if (isCuriaError(e)) throw e;
      throw new CuriaError('INTERNAL', `cannot load the attention graphs: ${(e as Error).message}`, {
        cause: e,
      });
    }
    return new OnnxAttentionModule(d, blocks, chunkRows);
  }

  /** tokens [rows, dim] → pooled [dim]. CANCELLED between ORT runs when `signal` fires. */
  async forward(tokens: Float32Array, rows: number, signal?: AbortSignal): Promise<Float32Array> {
    const d = this.dim;
    let x = tokens;
    let n = rows;
    for (const b of this.blocks) {
      throwIfAborted(signal, 'attention');
      const valid = nonZeroRows(x, n, d);
      const nv = countValid(valid);
      if (b.kind === 'self') {
        x = await this.selfBlock(b, x, n, valid, nv, signal);
      } else {
        if (nv === 0) {
          throw new CuriaError(
            'INVALID_ARGUMENT',
            'attention input has no non-padding token (all token rows are zero)',
          );
        }
        const xv = nv === n ? x : compact(x, valid, nv, d);
        const r = await b.session.run({ [ATTN_IO.tokens]: new Tensor('float32', xv, [nv, d]) });
        x = float32Output(r, ATTN_IO.out);
        n = b.numQueries;
      }
    }
    const out = new Float32Array(d);
    for (let r = 0; r < n; r++) for (let i = 0; i < d; i++) out[i]! += x[r * d + i]!;
    for (let i = 0; i < d; i++) out[i] = out[i]! / n;
    return out;
  }

  private async selfBlock(
    b: SelfBlock,
    x: Float32Array,
    n: number,
    valid: Uint8Array,
    nv: number,
    signal?: AbortSignal,
  ): Promise<Float32Array> {
    const d = this.dim;
    const out = new Float32Array(n * d);
    if (nv > 0) {
      const xv = nv === n ? x : compact(x, valid, nv, d);
      const kv = await b.kv.run({ [ATTN_IO.tokens]: new Tensor('float32', xv, [1, nv, d]) });
      const keys = kv[ATTN_IO.keys]!;
      const values = kv[ATTN_IO.values]!;
      const outV = nv === n ? out : new Float32Array(nv * d);
      for (let c0 = 0; c0 < nv; c0 += this.chunkRows) {
        throwIfAborted(signal, 'attention');
        const c1 = Math.min(nv, c0 + this.chunkRows);
        const q = new Tensor('float32', xv.subarray(c0 * d, c1 * d), [1, c1 - c0, d]);
        const r = await b.q.run({ [ATTN_IO.queries]: q, [ATTN_IO.keys]: keys, [ATTN_IO.values]: values });
        outV.set(float32Output(r, ATTN_IO.out), c0 * d);
      }
      if (outV === out) return out;
      let k = 0;
      for (let r = 0; r < n; r++) {
        if (!valid[r]) {
          out.set(b.padRow, r * d);
          continue;
        }
        out.set(outV.subarray(k * d, (k + 1) * d), r * d);
        k++;
      }
      return out;
    }
    for (let r = 0; r < n; r++) out.set(b.padRow, r * d);
    return out;
  }

  /** Releases the ORT sessions. */
  async release(): Promise<void> {
    await releaseBlocks(this.blocks);
  }
}

async function releaseBlocks(blocks: readonly Block[]): Promise<void> {
  for (const b of blocks) {
    if (b.kind === 'self') {
      await b.kv.release();
      await b.q.release();
    } else {
      await b.session.release();
    }
  }
}
