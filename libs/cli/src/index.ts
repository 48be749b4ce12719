export * from './cluster/catalog.js';
export * from './cluster/launcher.js';
