export * from './field.js';
export * from './grid.js';
export * from './resample.js';
export * from './normalize.js';
export * from './mind.js';
export * from './jacobian.js';
export * from './warp.js';
export * from './displacement-nifti.js';
