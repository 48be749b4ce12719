import type { HeadMeta } from './head-schema.js';

/** A float32 weight with its shape. */
export interface Weight {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/**
 * What inference reads from a head: its validated metadata and its weights by name. `Head`
 * implements it; the inference modules depend on this interface, not on `Head`, which uses them.
 */
export interface HeadModel {
  readonly meta: HeadMeta;
  /** Weight by name; INTERNAL when the head lacks it. */
  weight(name: string): Weight;
}
