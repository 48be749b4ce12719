export * from './features.js';
export * from './fingerprint.js';
export * from './head.js';
export * from './head-model.js';
export * from './head-schema.js';
export * from './import-curia.js';
export type { HeadOutput } from './infer/outputs.js';
export { probabilitiesFromLogits } from './infer/outputs.js';
export { slicePositionalEmbedding } from './math/positional.js';
export { HeadGraph, HEAD_GRAPH_OPSET, type Dims } from './onnx/graph.js';
export { minimizeLbfgs, type LbfgsOptions, type LbfgsResult, type Objective } from './math/lbfgs.js';
export {
  FOLD_TEST,
  FOLD_TRAIN,
  fitHead,
  type FitKind,
  type FitLabels,
  type FitOptions,
} from './fit/fit-head.js';
export { FIT_DEFAULTS } from './fit/defaults.js';
export type { MultiLabels } from './fit/multilabel.js';
export { OnnxAttentionModule, type OnnxAttentionOptions } from './infer/attention-runner.js';
export type { FeatureMatrix, SurvivalLabels } from './fit/data.js';
export type { CoxTies } from './fit/cox.js';
export {
  accuracy,
  balancedAccuracy,
  aucBinary,
  aucMacroOvr,
  concordanceIndex,
  regressionMetrics,
} from './fit/metrics.js';
export {
  importHeadCommand,
  runHeadFile,
  type ImportSummary,
  type RunHeadFileArgs,
  type RunHeadFileResult,
} from './cli.js';
export * from './store/versioned-store.js';
