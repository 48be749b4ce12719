// Test doubles of the stages, for tests of services built on this library.
export * from './testing/fake-embed.js';
