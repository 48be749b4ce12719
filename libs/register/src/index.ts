export * from './field.js';
export * from './grid.js';
export * from './resample.js';
export * from './normalize.js';
export * from './mind.js';
export * from './jacobian.js';
export * from './warp.js';
export * from './displacement-nifti.js';
export * from './inverse.js';
export * from './labels.js';
export * from './token-features.js';
export * from './similarity.js';
export {
  AFFINE_SEARCH_DEFAULTS,
  affineSearch,
  robustAffineFit,
  type AffineSearchOptions,
  type AffineSearchResult,
  type MovingSampler,
  type RobustLoss,
} from './affine.js';
export { CONVEX_ADAM_DEFAULTS, convexAdam, type ConvexAdamOptions } from './convex-adam.js';
export {
  costVolumeGraph,
  costVolumeTs,
  OnnxCostVolume,
  selectCostVolumeBackend,
  TS_COST_VOLUME,
  windowDisplacement,
  windowSize,
  type CostVolumeBackend,
  type CostVolumeInput,
  type OnnxCostVolumeOptions,
} from './cost-volume.js';
export {
  boxSmoothGraph,
  OnnxSmoothing,
  selectSmoothingBackend,
  TS_SMOOTHING,
  type SmoothingBackend,
  type SmoothingInput,
} from './smoothing.js';
export {
  OnnxWarp,
  selectWarpBackend,
  TS_WARP,
  warpGraph,
  warpVoxelsTs,
  type WarpBackend,
  type WarpInput,
} from './voxel-warp.js';
export {
  selectRegistrationBackends,
  TS_BACKENDS,
  type RegistrationBackends,
  type SelectedBackends,
} from './backends.js';
export type { BackendPreference, Closable, OnnxStepOptions } from './onnx-steps.js';
export type { OptimControl, OptimProgress } from './optim-control.js';
export * from './register-volumes.js';
export * from './curia-tokens.js';
