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
export type { OptimControl, OptimProgress } from './optim-control.js';
export * from './register-volumes.js';
export * from './curia-tokens.js';
