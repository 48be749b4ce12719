// Test helpers for code built on this library (not used in production paths).
export * from './testing/canonical-series.js';
export * from './testing/dicom-writer.js';
export * from './testing/bombs.js';
