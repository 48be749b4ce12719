export * from './architecture.js';
export * from './hf-checkpoint.js';
export * from './random-weights.js';
export * from './features.js';
export * from './engine.js';
export { createProviderSession, type ProviderSession } from './session.js';
export * from './engine-worker.js';
export type { WorkerEngineOptions } from './engine-worker-protocol.js';
export * from './embed-file.js';
export * from './bundle/manifest.js';
export * from './bundle/build.js';
export * from './bundle/load.js';
export * from './bundle/default-bundle.js';
export * from './bundle/sha256.js';
export * from './bundle/fidelity.js';
export * from './cpu-features.js';
export {
  buildDinov2Graph,
  DEFAULT_ATTENTION,
  DEFAULT_INT8_OPS,
  quantizeLinearWeight,
  DINOV2_OPSET,
  GRAPH_INPUT,
  GRAPH_OUTPUTS,
} from './onnx/dinov2-graph.js';
export type {
  AttentionImpl,
  Dinov2GraphOptions,
  GraphOutputName,
  Int8LinearOps,
  QuantizedLinearWeight,
} from './onnx/dinov2-graph.js';
export type { ComputeDType } from './onnx/graph-builder.js';
export { writeModel, encodeModel, MAX_ONNX_BYTES } from './onnx/model-writer.js';
export type { ModelParts, RawInitializer } from './onnx/model-writer.js';
