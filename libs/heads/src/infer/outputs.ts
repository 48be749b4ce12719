import { sigmoid, softmaxRows } from '../math/dense.js';
import type { HeadTask } from '../head-schema.js';

/** What a head returns. Row r is slice r for per-slice heads, or the volume for 3D heads. */
export interface HeadOutput {
  readonly rows: number;
  /** Outputs per row (classes, regression targets, or 1 for a Cox risk). */
  readonly outputs: number;
  /** [rows, outputs] raw scores: logits, regression values, or the Cox linear predictor. */
  readonly logits: Float32Array;
  /** Classification: softmax over outputs, or sigmoid when there is a single logit; multilabel: sigmoid of each. */
  readonly probabilities?: Float32Array;
  /** Regression: predicted values (same as logits). */
  readonly value?: Float32Array;
  /** Survival: linear risk score per row. */
  readonly risk?: Float32Array;
  /** Survival: S(t|x) at `times` for each row, [rows, times.length]. */
  readonly survival?: { readonly times: Float32Array; readonly curves: Float32Array };
}

/** Probabilities from logits: softmax, or sigmoid for a single-logit binary classifier. */
export function probabilitiesFromLogits(logits: Float32Array, rows: number, outputs: number): Float32Array {
  if (outputs === 1) return Float32Array.from(logits, (z) => sigmoid(z));
  return softmaxRows(logits, rows, outputs);
}

/** Wraps raw scores into the task's output fields. */
export function taskOutput(task: HeadTask, logits: Float32Array, rows: number, outputs: number): HeadOutput {
  switch (task) {
    case 'classification':
      return { rows, outputs, logits, probabilities: probabilitiesFromLogits(logits, rows, outputs) };
    case 'multilabel':
      return { rows, outputs, logits, probabilities: Float32Array.from(logits, (z) => sigmoid(z)) };
    case 'regression':
      return { rows, outputs, logits, value: logits };
    case 'survival':
      return { rows, outputs, logits, risk: logits };
  }
}
