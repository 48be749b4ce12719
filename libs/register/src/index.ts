export * from './field.js';
export * from './grid.js';
export * from './resample.js';
