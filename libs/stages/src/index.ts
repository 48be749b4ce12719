export * from './embed-stream.js';
export * from './embedding-cache.js';
export * from './feature-key.js';
export * from './preprocess-stream.js';
export * from './stage-clients.js';
export * from './stage-deadlines.js';
export * from './stage-errors.js';
export * from './study-embedding.js';
