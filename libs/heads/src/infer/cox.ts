import type { HeadModel } from '../head-model.js';
import { linear } from '../math/dense.js';
import type { HeadOutput } from './outputs.js';

/**
 * Cox head: risk = w·x + b and S(t|x) = exp(−H0(t) · exp(risk)) on the stored Breslow baseline
 * cumulative hazard H0 (a step function evaluated at its event times).
 */
export function coxOutput(head: HeadModel, x: Float32Array, rows: number): HeadOutput {
  const dim = head.meta.architecture.input_dim;
  const risk = linear(x, rows, dim, head.weight('cox.weight').data, head.weight('cox.bias').data, 1);
  const times = head.weight('cox.baseline_times').data;
  const h0 = head.weight('cox.baseline_cumhaz').data;
  const nt = times.length;
  const curves = new Float32Array(rows * nt);
  for (let r = 0; r < rows; r++) {
    const e = Math.exp(risk[r]!);
    for (let t = 0; t < nt; t++) curves[r * nt + t] = Math.exp(-h0[t]! * e);
  }
  return { rows, outputs: 1, logits: risk, risk, survival: { times, curves } };
}
