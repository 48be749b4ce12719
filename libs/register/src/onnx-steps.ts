import { CuriaError } from '@curia/errors';
import type { HeadGraph } from '@curia/heads';
import {
  createProviderSession,
  encodeModel,
  type ExecutionProviderName,
  type ModelParts,
  type ProviderSession,
} from '@curia/model';
import { cpuBudget } from '@curia/tensors';
import type { Tensor } from 'onnxruntime-node';

/*
 * What the ONNX Runtime backends of the heavy registration steps (cost volume, MIND-SSC, box
 * smoothing, warping) share: graph fragments built with `HeadGraph`, a session cache per graph
 * variant, and the backend choice ('auto': ORT on CUDA when a CUDA session loads, else TypeScript).
 */

/** Largest int64 Slice end: "to the end of the axis". */
export const SLICE_END = 2 ** 53 - 1;

/** Options of every ONNX step backend. */
export interface OnnxStepOptions {
  /** Providers in preference order (default ['cuda', 'cpu']: CUDA when present). */
  readonly executionProviders?: readonly ExecutionProviderName[];
  /** ORT intra-op threads (default: the CPU budget). */
  readonly threads?: number;
}

/** How a step backend is chosen: see {@link selectStepBackend}. */
export type BackendPreference = 'auto' | 'typescript' | 'onnx';

/** A backend that may hold ORT sessions. */
export interface Closable {
  close?: () => Promise<void>;
}

/**
 * Edge (replicate) padding by `r` of spatial axes 1–3 of a rank-4 tensor: r copies (Tile) of the
 * first and last planes concatenated axis by axis — HeadGraph has no string attribute for Pad's
 * mode 'edge'. Works for symbolic dims.
 */
export function edgePad(g: HeadGraph, x: string, r: number): string {
  if (r <= 0) return x;
  let padded = x;
  for (const axis of [1, 2, 3]) {
    const ax = g.int64('axis', [axis]);
    const first = g.op('Slice', [padded, g.int64('s0', [0]), g.int64('e0', [1]), ax]);
    const last = g.op('Slice', [padded, g.int64('s1', [-1]), g.int64('e1', [SLICE_END]), ax]);
    const reps = g.int64(
      'reps',
      [0, 1, 2, 3].map((a) => (a === axis ? r : 1)),
    );
    padded = g.op('Concat', [g.op('Tile', [first, reps]), padded, g.op('Tile', [last, reps])], {
      axis: { i: axis },
    });
  }
  return padded;
}

/**
 * The window of an {@link edgePad}-ded (by r) tensor shifted by (dx, dy, dz) voxels, |d| ≤ r: the
 * original extent, i.e. x(clamp(v + d)) of the unpadded tensor.
 */
export function shiftedSlice(
  g: HeadGraph,
  padded: string,
  r: number,
  [dx, dy, dz]: readonly [number, number, number],
): string {
  const starts = g.int64('starts', [r + dz, r + dy, r + dx]);
  // Slice end along an axis of padded length D + 2r: start + D = −(r − d), or "to the end" at d = r.
  const ends = g.int64(
    'ends',
    [dz, dy, dx].map((d) => (d === r ? SLICE_END : -(r - d))),
  );
  return g.op('Slice', [padded, starts, ends, g.int64('axes', [1, 2, 3])]);
}

/** `passes` AveragePool passes of a (2r+1)³ window with count_include_pad `include` (0: normalised). */
export function averagePool(
  g: HeadGraph,
  x5: string,
  r: number,
  passes: number,
  include = 0,
  pad = r,
): string {
  let x = x5;
  const k = 2 * r + 1;
  for (let p = 0; p < passes; p++) {
    x = g.op('AveragePool', [x], {
      kernel_shape: { ints: [k, k, k] },
      pads: { ints: [pad, pad, pad, pad, pad, pad] },
      count_include_pad: { i: include },
    });
  }
  return x;
}

/** [C, Z, Y, X] → f([1, C, Z, Y, X]) → [C, Z, Y, X] (named `out` when given). */
export function onBatch(g: HeadGraph, x: string, f: (x5: string) => string, out?: string): string {
  const axis0 = g.int64('axis0', [0]);
  return g.op('Squeeze', [f(g.op('Unsqueeze', [x, axis0])), axis0], {}, out);
}

/** The model at ONNX opset `opset` instead of HeadGraph's default (GridSample on 5-D needs 20). */
export function withOpset(parts: ModelParts, opset: number): ModelParts {
  return {
    ...parts,
    model: { ...parts.model, opsetImport: [{ domain: '', version: opset }] },
  };
}

/**
 * The base of a step's ONNX Runtime backend: ORT sessions of the variants of the step's graph (one
 * per key, e.g. radius and passes), created on first use through `createProviderSession` (CUDA
 * first by default, CPU fallback) and kept until {@link OnnxStep.close}.
 */
export abstract class OnnxStep {
  private readonly sessions = new Map<string, Promise<ProviderSession>>();
  private lastProvider: ExecutionProviderName | undefined;

  constructor(
    private readonly what: string,
    private readonly opts: OnnxStepOptions = {},
  ) {}

  /** `onnx:<provider of the last session>` (`onnx` before the first). */
  get name(): string {
    return this.lastProvider === undefined ? 'onnx' : `onnx:${this.lastProvider}`;
  }

  /** Runs the variant `key` (built by `build` on first use) and returns its float32 `output`. */
  protected async run(
    key: string,
    build: () => ModelParts,
    feeds: Record<string, Tensor>,
    output: string,
  ): Promise<Float32Array> {
    let p = this.sessions.get(key);
    if (!p) {
      p = createProviderSession(
        encodeModel(build()),
        {
          intraOpNumThreads: this.opts.threads ?? cpuBudget(),
          interOpNumThreads: 1,
          executionMode: 'sequential',
          graphOptimizationLevel: 'all',
          logSeverityLevel: 3,
        },
        this.opts.executionProviders ?? ['cuda', 'cpu'],
      );
      this.sessions.set(key, p);
    }
    const { session, provider } = await p;
    this.lastProvider = provider;
    const out = (await session.run(feeds))[output];
    if (!out || !(out.data instanceof Float32Array)) {
      throw new CuriaError('INTERNAL', `${this.what} graph returned no float32 ${output}`);
    }
    return out.data;
  }

  /** Releases every session. */
  async close(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const p of all) {
      // A session that never loaded has nothing to release.
      const loaded = await p.catch(() => null);
      if (loaded) await loaded.session.release();
    }
  }
}

/** What the `select…Backend` functions take. */
export type SelectOptions = { readonly prefer?: BackendPreference } & OnnxStepOptions;

/** The heavy steps of a registration. */
export type HeavyStep = 'costVolume' | 'mind' | 'smoothing' | 'warp';

/**
 * Whether `'auto'` runs a step on ORT's CPU provider when CUDA does not load, from
 * `bench/optim-bench.ts` (README) with one ORT thread against the one-core TypeScript kernels:
 * MIND-SSC (≈ 4× faster, first call included) and box smoothing (≈ 1.6×, first call 40–85 ms;
 * Adam smooths twice per iteration) do; the cost volume does not — ≈ 1.5× faster per call, but the
 * first call (creating the 343-slice session) is slower than the TypeScript kernel, and a
 * registration computes one or two — and neither does warping (GridSample ≈ 2.5× slower than the
 * TypeScript sampler).
 */
export const ORT_FASTER_ON_CPU: Readonly<Record<HeavyStep, boolean>> = Object.freeze({
  costVolume: false,
  mind: true,
  smoothing: true,
  warp: false,
});

/**
 * The providers and threads of `'auto'`'s CPU fallback: one ORT thread unless told otherwise, as
 * measured (the TypeScript kernels use one core; with two threads on shared cores ORT's spinning
 * workers lose what they gain).
 */
export function cpuFallback(opts: OnnxStepOptions): OnnxStepOptions {
  return { ...opts, executionProviders: ['cpu'], threads: opts.threads ?? 1 };
}

/**
 * A step's backend: `'typescript'` → `ts`; `'onnx'` → `onnx(opts)` on `executionProviders`
 * (default CPU); `'auto'` (default) → ORT on CUDA when `probe` (a tiny run) loads a CUDA session,
 * else ORT on CPU ({@link cpuFallback}) when {@link ORT_FASTER_ON_CPU} says so for `step`, else `ts`.
 */
export async function selectStepBackend<B>(
  step: HeavyStep,
  opts: SelectOptions,
  ts: B,
  onnx: (opts: OnnxStepOptions) => B & { close(): Promise<void> },
  probe: (b: B) => Promise<unknown>,
): Promise<B & Closable> {
  // The TypeScript backends hold nothing to close.
  const plain = ts as B & Closable;
  const prefer = opts.prefer ?? 'auto';
  if (prefer === 'typescript') return plain;
  if (prefer === 'onnx') return onnx({ ...opts, executionProviders: opts.executionProviders ?? ['cpu'] });
  const cuda = onnx({ ...opts, executionProviders: ['cuda'] });
  try {
    await probe(cuda);
    return cuda;
  } catch {
    await cuda.close();
    return ORT_FASTER_ON_CPU[step] ? onnx(cpuFallback(opts)) : plain;
  }
}
