import { mulberry32 } from '@curia/tensors';

import { expectedParameters, type Architecture, type DinoWeights } from './architecture.js';

export { mulberry32 };

/** Fills `out` with N(0, std²) samples truncated to ±2 std (resampled), like DINOv2's trunc_normal_ init. */
export function fillTruncatedNormal(out: Float32Array, std: number, uniform: () => number): void {
  let i = 0;
  while (i < out.length) {
    // Box-Muller yields two independent normals per pair of uniforms.
    const u1 = 1 - uniform();
    const u2 = uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const z0 = r * Math.cos(2 * Math.PI * u2);
    const z1 = r * Math.sin(2 * Math.PI * u2);
    if (Math.abs(z0) <= 2) out[i++] = z0 * std;
    if (i < out.length && Math.abs(z1) <= 2) out[i++] = z1 * std;
  }
}

/** Options of {@link randomWeights}. */
export interface RandomWeightsOptions {
  /** PRNG seed (uint32). */
  readonly seed: number;
  /** Std of the truncated-normal init of weights and tokens (default 0.02, as DINOv2). */
  readonly std?: number;
  /**
   * LayerScale init (default 1.0). DINOv2 trains from 1e-5, but at that value random blocks are
   * near-identity and every token looks alike; 1.0 makes demo outputs depend on the whole network.
   */
  readonly layerScale?: number;
}

/**
 * Deterministic random DINOv2 weights: truncated-normal (std 0.02) linear/conv weights, tokens and
 * position embeddings; zero biases; LayerNorm weight 1, bias 0; constant LayerScale.
 */
export function randomWeights(arch: Architecture, opts: RandomWeightsOptions): DinoWeights {
  const uniform = mulberry32(opts.seed);
  const std = opts.std ?? 0.02;
  const ls = opts.layerScale ?? 1.0;
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of expectedParameters(arch)) {
    let size = 1;
    for (const s of shape) size *= s;
    const t = new Float32Array(size);
    if (name.endsWith('lambda1')) t.fill(ls);
    else if (/norm\d?\.weight$|^layernorm\.weight$/.test(name)) t.fill(1);
    else if (name.endsWith('.bias')) t.fill(0);
    else fillTruncatedNormal(t, std, uniform);
    out.set(name, t);
  }
  return out;
}
