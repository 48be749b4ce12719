import { CuriaError } from '@curia/errors';
import { cpuBudget, float16ToFloat32, float32ToFloat16, firstNonFinite } from '@curia/tensors';
import type { InferenceSession } from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-node';

import { numTokens } from './architecture.js';
import { loadBundle, type LoadedBundle } from './bundle/load.js';
import type { BundleManifest } from './bundle/manifest.js';
import { GRAPH_INPUT } from './onnx/dinov2-graph.js';
import { createProviderSession, type ExecutionProviderName } from './session.js';

/** Execution providers an engine may ask for, in preference order. */
export type { ExecutionProviderName } from './session.js';

/** Token-sequence outputs {@link EmbedEngine.run} can return. */
export type EmbedOutputName = 'last_hidden_state' | 'last_block_prenorm';

/** ORT graph optimisation levels. */
export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

/**
 * Options of {@link EmbedEngine.open}. Defaults, and why (numbers from
 * `bench/embed-raw-bench.ts` and interleaved A/B runs on the 2-core dev box, demo bundle):
 * - `executionProviders: ['cpu']`. Pass `['cuda', 'cpu']` to prefer a GPU; each provider is tried
 *   alone in order, so the one that loaded is known exactly. This onnxruntime-node build bundles
 *   only the CPU provider, so CUDA fails to load and the engine reports `fallbackReason`.
 * - `graphOptimizationLevel: 'all'`: ORT fuses exact GELU (BiasGelu), the attention score scale
 *   (FusedMatMul) and MatMul+Add, and uses NCHWc for the patch Conv. 'all' and 'extended' measure
 *   the same (CPU time per slice within ±3%); 'basic'/'disabled' cost 3–4% more CPU at batch 8.
 *   The model is MatMul-bound, so the levels differ little.
 * - `intraOpThreads: cpuBudget()` (cores, capped by a cgroup CPU limit): MatMuls parallelise across cores; one thread was
 *   ×0.5–0.8 the throughput of two. One engine serves one batch at a time, so it may use every core.
 * - `interOpThreads: 1`, sequential execution: a ViT is one chain of ops; there is nothing to overlap.
 * - `enableCpuMemArena` / `enableMemPattern: true`: serving repeats the same shapes, so buffers are
 *   reused instead of allocating B·T·D floats per op per call (no arena: up to 18% more CPU at batch 8).
 * - `allowSpinning: false` (`session.intra_op.allow_spinning = 0`): ORT's pool threads otherwise
 *   busy-wait between parallel sections, burning the cycles a service's event loop (and, on a shared
 *   node, everything else) needs. Interleaved A/B at batch 8 on the 2-core box: spinning off gave
 *   the same or higher throughput (13.7/14.5/10.2 vs 13.5/13.4/8.6 slices/s) at 3–15% less CPU
 *   per slice (109/101/115 vs 112/112/135 ms).
 */
export interface EngineOptions {
  readonly executionProviders?: readonly ExecutionProviderName[];
  readonly intraOpThreads?: number;
  readonly interOpThreads?: number;
  readonly graphOptimizationLevel?: GraphOptimizationLevel;
  readonly enableCpuMemArena?: boolean;
  readonly enableMemPattern?: boolean;
  /** Let ORT's intra-op threads spin while waiting for work (default false, see above). */
  readonly allowSpinning?: boolean;
  /** Verify model.onnx's sha256 against bundle.json before loading (default true). */
  readonly verifySha256?: boolean;
  /** Largest accepted batch (default 64); larger requests get RESOURCE_EXHAUSTED. */
  readonly maxBatch?: number;
  /** CUDA device ordinal (default 0). */
  readonly cudaDeviceId?: number;
  readonly signal?: AbortSignal;
}

/** Static facts about a loaded engine (for GetInfo). */
export interface EngineInfo {
  readonly name: string;
  readonly version: string;
  readonly sha256: string;
  readonly demoWeights: boolean;
  readonly dtype: 'f32' | 'f16';
  /** The provider the session actually runs on. */
  readonly executionProvider: ExecutionProviderName;
  readonly requestedProviders: readonly ExecutionProviderName[];
  /** Why a preferred provider was not used (absent when the first choice loaded). */
  readonly fallbackReason?: string;
  readonly intraOpThreads: number;
  readonly interOpThreads: number;
  readonly graphOptimizationLevel: GraphOptimizationLevel;
  readonly imageSize: number;
  readonly numChannels: number;
  readonly tokens: number;
  readonly hidden: number;
  readonly numRegisterTokens: number;
  readonly maxBatch: number;
}

/** Options of {@link EmbedEngine.run}. */
export interface RunOptions {
  /** Which outputs to fetch (default `['last_hidden_state']`); only these are copied out of ORT. */
  readonly outputs?: readonly EmbedOutputName[];
  readonly signal?: AbortSignal;
  /**
   * {@link WorkerEmbedEngine} only: move `pixels`' buffer to the engine thread instead of copying
   * it (the caller's array is detached afterwards). Ignored by {@link EmbedEngine}.
   */
  readonly transferInput?: boolean;
  /**
   * The caller has already checked that every pixel is finite (the Embed service does, per slice,
   * to name the row and column): skips the engine's own scan of the batch.
   */
  readonly inputChecked?: boolean;
}

/** Result of {@link EmbedEngine.run}: row-major (B, T, D) arrays for the requested outputs. */
export interface RunResult {
  readonly lastHiddenState?: Float32Array;
  readonly lastBlockPrenorm?: Float32Array;
  readonly batch: number;
  readonly tokens: number;
  readonly hidden: number;
  readonly numRegisterTokens: number;
}

function positiveInt(v: number | undefined, fallback: number, what: string): number {
  const n = v ?? fallback;
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new CuriaError('INVALID_ARGUMENT', `${what} must be a positive integer`);
  return n;
}

function toF32(data: unknown): Float32Array {
  if (data instanceof Float32Array) return data;
  if (data instanceof Uint16Array) return float16ToFloat32(data);
  // Newer runtimes may hand out a native Float16Array for float16 tensors.
  if (ArrayBuffer.isView(data)) return Float32Array.from(data as unknown as ArrayLike<number>);
  throw new CuriaError('INTERNAL', 'onnxruntime returned an output that is not a typed array');
}

/**
 * A DINOv2 backbone session over one bundle: validated input in, token sequences out.
 * Safe to call `run` concurrently (ORT sessions are thread-safe), though one call at a time
 * per engine uses the cores best.
 */
export class EmbedEngine {
  private closed = false;

  private constructor(
    private readonly session: InferenceSession,
    readonly bundle: LoadedBundle,
    private readonly infoValue: EngineInfo,
  ) {}

  /** Loads a bundle (checking its manifest and hash) and creates the ORT session. */
  static async open(bundleDir: string, opts: EngineOptions = {}): Promise<EmbedEngine> {
    const bundle = await loadBundle(bundleDir, {
      verifySha256: opts.verifySha256 ?? true,
      signal: opts.signal,
    });
    const requested = opts.executionProviders ?? ['cpu'];
    const intra = positiveInt(opts.intraOpThreads, cpuBudget(), 'intraOpThreads');
    const inter = positiveInt(opts.interOpThreads, 1, 'interOpThreads');
    const maxBatch = positiveInt(opts.maxBatch, 64, 'maxBatch');
    const level = opts.graphOptimizationLevel ?? 'all';
    const base: InferenceSession.SessionOptions = {
      intraOpNumThreads: intra,
      interOpNumThreads: inter,
      executionMode: 'sequential',
      graphOptimizationLevel: level,
      enableCpuMemArena: opts.enableCpuMemArena ?? true,
      enableMemPattern: opts.enableMemPattern ?? true,
      logSeverityLevel: 3,
      extra: { session: { intra_op: { allow_spinning: opts.allowSpinning === true ? '1' : '0' } } },
    };
    const {
      session,
      provider: used,
      fallbackReasons: reasons,
    } = await createProviderSession(bundle.modelPath, base, requested, {
      cudaDeviceId: opts.cudaDeviceId,
      signal: opts.signal,
    });
    const m: BundleManifest = bundle.manifest;
    const a = m.architecture;
    const info: EngineInfo = {
      name: m.name,
      version: m.version,
      sha256: m.sha256,
      demoWeights: m.demo_weights,
      dtype: m.dtype,
      executionProvider: used,
      requestedProviders: [...requested],
      ...(reasons.length > 0 ? { fallbackReason: reasons.join('; ') } : {}),
      intraOpThreads: intra,
      interOpThreads: inter,
      graphOptimizationLevel: level,
      imageSize: a.image_size,
      numChannels: a.num_channels,
      tokens: numTokens(a),
      hidden: a.hidden_size,
      numRegisterTokens: a.num_register_tokens,
      maxBatch,
    };
    return new EmbedEngine(session, bundle, info);
  }

  /** Name, version, hash, provider, threads and shape facts of this engine. */
  info(): EngineInfo {
    return this.infoValue;
  }

  /** Floats per input slice (C · S · S). */
  get pixelsPerSlice(): number {
    return this.infoValue.numChannels * this.infoValue.imageSize ** 2;
  }

  /**
   * Runs `batch` preprocessed slices (`pixels`: B·C·S·S floats, row-major (B, C, S, S)).
   * INVALID_ARGUMENT on a wrong length or non-finite values, RESOURCE_EXHAUSTED above `maxBatch`,
   * CANCELLED when `signal` fires (checked before and after the native call, which cannot be
   * interrupted midway).
   */
  async run(pixels: Float32Array, batch: number, opts: RunOptions = {}): Promise<RunResult> {
    if (this.closed) throw new CuriaError('FAILED_PRECONDITION', 'engine is closed');
    const info = this.infoValue;
    if (!Number.isSafeInteger(batch) || batch <= 0) {
      throw new CuriaError('INVALID_ARGUMENT', `batch must be a positive integer (got ${batch})`);
    }
    if (batch > info.maxBatch) {
      throw new CuriaError(
        'RESOURCE_EXHAUSTED',
        `batch ${batch} exceeds the engine's maxBatch ${info.maxBatch}`,
      );
    }
    const per = this.pixelsPerSlice;
    if (pixels.length !== batch * per) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `pixel_values has ${pixels.length} values; expected batch ${batch} × ${info.numChannels} × ${info.imageSize} × ${info.imageSize} = ${batch * per}`,
      );
    }
    const bad = opts.inputChecked === true ? -1 : firstNonFinite(pixels);
    if (bad >= 0) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `pixel_values has a NaN or infinite value in slice ${Math.floor(bad / per)}`,
      );
    }
    const outputs = opts.outputs ?? ['last_hidden_state'];
    if (outputs.length === 0)
      throw new CuriaError('INVALID_ARGUMENT', 'outputs must name at least one output');
    for (const o of outputs) {
      if (o !== 'last_hidden_state' && o !== 'last_block_prenorm') {
        throw new CuriaError('INVALID_ARGUMENT', `unknown output '${String(o)}'`);
      }
    }
    if (opts.signal?.aborted) throw new CuriaError('CANCELLED', 'embedding cancelled');
    const dims = [batch, info.numChannels, info.imageSize, info.imageSize];
    const input =
      this.bundle.manifest.io_dtype === 'f16'
        ? new Tensor('float16', float32ToFloat16(pixels), dims)
        : new Tensor('float32', pixels, dims);
    let results: InferenceSession.ReturnType;
    try {
      results = await this.session.run({ [GRAPH_INPUT]: input }, [...new Set(outputs)]);
    } catch (e) {
      throw new CuriaError(
        'INTERNAL',
        `onnxruntime run failed: ${(e as Error).message.split('\n')[0] ?? ''}`,
        {
          cause: e,
        },
      );
    }
    if (opts.signal?.aborted) throw new CuriaError('CANCELLED', 'embedding cancelled');
    const get = (name: EmbedOutputName): Float32Array | undefined => {
      const t = results[name];
      return t ? toF32(t.data) : undefined;
    };
    const lastHiddenState = get('last_hidden_state');
    const lastBlockPrenorm = get('last_block_prenorm');
    return {
      ...(lastHiddenState ? { lastHiddenState } : {}),
      ...(lastBlockPrenorm ? { lastBlockPrenorm } : {}),
      batch,
      tokens: info.tokens,
      hidden: info.hidden,
      numRegisterTokens: info.numRegisterTokens,
    };
  }

  /** Releases the native session. Further `run` calls fail with FAILED_PRECONDITION. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
  }
}
