/** Test helpers other packages' tests use: a throwaway PKI and a JWT issuer. */
export * from './testing/pki.js';
export * from './testing/jwt.js';
