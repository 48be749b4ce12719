import type { HeadModel } from '../head-model.js';
import { linear } from '../math/dense.js';
import { taskOutput, type HeadOutput } from './outputs.js';

/** Forward pass of an `mlp` head: Linear (ReLU Linear)*, on [rows, in] row vectors. */
export function mlpForward(head: HeadModel, x: Float32Array, rows: number): HeadOutput {
  const sizes = head.meta.architecture.mlp_sizes!;
  let h = x;
  for (let l = 0; l + 1 < sizes.length; l++) {
    h = linear(
      h,
      rows,
      sizes[l]!,
      head.weight(`mlp.${l}.weight`).data,
      head.weight(`mlp.${l}.bias`).data,
      sizes[l + 1]!,
    );
    if (l + 2 < sizes.length) for (let i = 0; i < h.length; i++) if (h[i]! < 0) h[i] = 0;
  }
  return taskOutput(head.meta.task, h, rows, sizes[sizes.length - 1]!);
}
