export * from './dtype.js';
export * from './float16.js';
export * from './tensor.js';
export * from './safetensors.js';
export * from './shared-data.js';
export { mulberry32 } from './random.js';
export { cgroupCpuQuota, cpuBudget } from './cpu-budget.js';
export type { TextReader } from './cpu-budget.js';
export * from './pca.js';
