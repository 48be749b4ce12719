export * from './dtype.js';
export * from './float16.js';
export * from './tensor.js';
export * from './safetensors.js';
export * from './shared-data.js';
export { mulberry32 } from './random.js';
