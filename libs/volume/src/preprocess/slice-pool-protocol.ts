import type { ProcessedSlice } from './slice-kernel.js';
import type { PreprocessSpec } from './spec.js';

/** One slice to process on a pool thread; `raw` is transferred and comes back in the answer. */
export interface SliceTask {
  readonly id: number;
  readonly raw: Float64Array;
  readonly rows: number;
  readonly cols: number;
  readonly spec: PreprocessSpec;
}

/** A pool thread's answer: the processed slice plus the raw buffer, handed back for reuse. */
export type SliceAnswer =
  | ({ readonly id: number; readonly ok: true; readonly raw: Float64Array } & ProcessedSlice)
  | { readonly id: number; readonly ok: false; readonly message: string };
