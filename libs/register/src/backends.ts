import { OnnxCostVolume, probeCostVolume, TS_COST_VOLUME, type CostVolumeBackend } from './cost-volume.js';
import { OnnxMind, TS_MIND, type MindBackend } from './mind.js';
import {
  cpuFallback,
  ORT_FASTER_ON_CPU,
  OnnxStep,
  type BackendPreference,
  type HeavyStep,
  type OnnxStepOptions,
} from './onnx-steps.js';
import { OnnxSmoothing, TS_SMOOTHING, type SmoothingBackend } from './smoothing.js';
import { OnnxWarp, TS_WARP, type WarpBackend } from './voxel-warp.js';

/** Where each heavy step of a registration runs. */
export interface RegistrationBackends {
  /** The SSD cost volume of the convex stage. */
  readonly costVolume: CostVolumeBackend;
  /** MIND-SSC features. */
  readonly mind: MindBackend;
  /** Box smoothing of the convex stage and of Adam's reparameterisation (and its adjoint). */
  readonly smoothing: SmoothingBackend;
  /** Warping of fields through dense displacements (the inverse-consistency compositions). */
  readonly warp: WarpBackend;
}

/** Every step in TypeScript: the default. */
export const TS_BACKENDS: RegistrationBackends = Object.freeze({
  costVolume: TS_COST_VOLUME,
  mind: TS_MIND,
  smoothing: TS_SMOOTHING,
  warp: TS_WARP,
});

/** Backends that may hold ORT sessions: `close()` releases them all. */
export type SelectedBackends = RegistrationBackends & {
  /** `cuda` when the steps run on a CUDA session (the `'auto'` probe succeeded), else `cpu`. */
  readonly device: 'cuda' | 'cpu';
  close(): Promise<void>;
};

/** ORT backends on `opts`'s providers for the steps of `onnx`, TypeScript for the others. */
function mixedBackends(
  opts: OnnxStepOptions,
  onnx: (step: HeavyStep) => boolean,
  device: 'cuda' | 'cpu' = 'cpu',
): SelectedBackends {
  const costVolume = onnx('costVolume') ? new OnnxCostVolume(opts) : TS_COST_VOLUME;
  const mind = onnx('mind') ? new OnnxMind(opts) : TS_MIND;
  const smoothing = onnx('smoothing') ? new OnnxSmoothing(opts) : TS_SMOOTHING;
  const warp = onnx('warp') ? new OnnxWarp(opts) : TS_WARP;
  return {
    costVolume,
    mind,
    smoothing,
    warp,
    device,
    close: async () => {
      for (const b of [costVolume, mind, smoothing, warp]) if (b instanceof OnnxStep) await b.close();
    },
  };
}

/**
 * The backends of all four heavy steps (cost volume, MIND-SSC, box smoothing, warping):
 * - `'typescript'`: {@link TS_BACKENDS};
 * - `'onnx'`: ONNX Runtime graphs on `executionProviders` (default CPU);
 * - `'auto'` (default): ORT on CUDA for every step when a CUDA session loads (one probe, skipped
 *   when `executionProviders` is given without `cuda`), else
 *   ORT on CPU (one thread unless `threads` says otherwise) where it is measured faster than
 *   TypeScript over a registration ({@link ORT_FASTER_ON_CPU}: MIND-SSC and box smoothing) and
 *   TypeScript for the cost volume and warping (see the README's measurements).
 * Close the result when done.
 */
export async function selectRegistrationBackends(
  prefer: BackendPreference = 'auto',
  opts: OnnxStepOptions = {},
): Promise<SelectedBackends> {
  if (prefer === 'typescript') return mixedBackends(opts, () => false);
  if (prefer === 'onnx') {
    return mixedBackends({ ...opts, executionProviders: opts.executionProviders ?? ['cpu'] }, () => true);
  }
  const cpuMix = (): SelectedBackends => mixedBackends(cpuFallback(opts), (step) => ORT_FASTER_ON_CPU[step]);
  // Providers given without CUDA: no probe (it would only fail, noisily).
  if (opts.executionProviders && !opts.executionProviders.includes('cuda')) return cpuMix();
  const cuda = mixedBackends({ ...opts, executionProviders: ['cuda'] }, () => true, 'cuda');
  try {
    await probeCostVolume(cuda.costVolume);
    return cuda;
  } catch {
    await cuda.close();
    return cpuMix();
  }
}
