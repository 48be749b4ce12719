export * from './classes.js';
export * from './grid.js';
export * from './label-map.js';
export * from './overlap.js';
export * from './sample.js';
export * from './token-targets.js';
