import { CuriaError } from '@curia/errors';
import { principalDirections } from '@curia/tensors';
import { mat4Multiply, type Geometry } from '@curia/volume';

import type { Grid, GridField } from './field.js';

/**
 * Curia patch tokens as a registration feature field.
 *
 * Preprocessing resizes every canonical slice (rows × cols) to the model grid with
 * align_corners=False, so token t of G along an axis of n pixels is centred at canonical pixel
 * (t + 0.5)·n/G − 0.5. Token (tx, ty) of canonical slice k is therefore voxel (tx, ty, k) of a grid
 * whose affine is the canonical affine composed with that scaling: a G × G × slices grid, anisotropic
 * (one token spans n/G pixels in-plane, one slice through-plane).
 */

/** The grid of a study's patch tokens: voxel (tx, ty, k) is token (row ty, column tx) of canonical slice k. */
export function tokenGrid(
  geometry: Pick<Geometry, 'canonicalDims' | 'canonicalAffine'>,
  tokensPerSide: number,
): Grid {
  const g = tokensPerSide;
  if (!(Number.isInteger(g) && g > 0)) {
    throw new CuriaError('INVALID_ARGUMENT', `the token grid side must be a positive integer, got ${g}`);
  }
  const [slices, rows, cols] = geometry.canonicalDims;
  const sx = cols / g;
  const sy = rows / g;
  const scale = [sx, 0, 0, 0.5 * sx - 0.5, 0, sy, 0, 0.5 * sy - 0.5, 0, 0, 1, 0, 0, 0, 0, 1];
  return { dims: [g, g, slices], affine: mat4Multiply(geometry.canonicalAffine, scale) };
}

/**
 * Assembles per-slice token features (token-major: token t = ty·G + tx, channel c at `t·C + c`, as
 * Embed returns projected tokens) into a channel-major {@link GridField} on a {@link tokenGrid}.
 * Slices arrive in any order; {@link field} refuses to answer until every slice has come.
 */
export class TokenFieldAssembler {
  private readonly data: Float32Array;
  private readonly seen: Uint8Array;
  private missing: number;

  constructor(
    readonly grid: Grid,
    readonly channels: number,
  ) {
    const [g, g2, slices] = grid.dims;
    if (g !== g2) throw new CuriaError('INTERNAL', `a token grid is square, got ${g}×${g2}`);
    this.data = new Float32Array(channels * g * g * slices);
    this.seen = new Uint8Array(slices);
    this.missing = slices;
  }

  /** Stores canonical slice `k`'s tokens ([G·G, C] token-major). */
  addSlice(k: number, tokens: ArrayLike<number>): void {
    const [g, , slices] = this.grid.dims;
    const plane = g * g;
    const c = this.channels;
    if (!(Number.isInteger(k) && k >= 0 && k < slices)) {
      throw new CuriaError('INTERNAL', `token slice ${k} is outside 0..${slices - 1}`);
    }
    if (tokens.length !== plane * c) {
      throw new CuriaError(
        'INTERNAL',
        `slice ${k} has ${tokens.length} token values, expected ${plane}×${c}`,
      );
    }
    if (this.seen[k]) throw new CuriaError('INTERNAL', `token slice ${k} came twice`);
    const n = plane * slices;
    const base = k * plane;
    for (let t = 0; t < plane; t++) {
      for (let ch = 0; ch < c; ch++) this.data[ch * n + base + t] = tokens[t * c + ch]!;
    }
    this.seen[k] = 1;
    this.missing--;
  }

  /** The assembled field. */
  field(): GridField {
    if (this.missing > 0) {
      throw new CuriaError('INTERNAL', `${this.missing} token slices never came`);
    }
    return { grid: this.grid, channels: this.channels, data: this.data };
  }
}

/** Slices per image whose full patch tokens fit the joint PCA of a pair's Curia features. */
export const PCA_SAMPLE_SLICES = 6;

/**
 * The canonical slices (of `count`) whose tokens fit the PCA: `want` evenly spaced ones, centred in
 * their stretches (⌊(i + ½)·count/n⌋), so the end slices, often only table or air, are avoided.
 */
export function sampleSlices(count: number, want = PCA_SAMPLE_SLICES): number[] {
  const n = Math.min(count, want);
  return Array.from({ length: n }, (_, i) => Math.floor(((i + 0.5) * count) / n));
}

/** A projection of D-dimensional tokens onto C directions, in the layout Embed's projected_tokens takes. */
export interface TokenProjection {
  /** D × C, row-major: element `d·C + c` is channel d of direction c. */
  readonly basis: Float32Array;
  /** D: subtracted before projecting. */
  readonly mean: Float32Array;
  readonly dim: number;
  readonly channels: number;
}

/** Most token rows {@link fitTokenProjection} uses (the covariance costs rows·D²/2). */
export const PROJECTION_SAMPLE_ROWS = 4096;

/**
 * PCA of sample tokens (each a [tokens, D] row-major array, e.g. patch tokens of a few slices of both
 * images of a pair): the mean and the top `channels` principal directions, fitted on at most
 * `maxRows` rows taken at an even stride so every sample contributes. Deterministic.
 */
export function fitTokenProjection(
  samples: readonly Float32Array[],
  dim: number,
  channels: number,
  maxRows = PROJECTION_SAMPLE_ROWS,
): TokenProjection {
  if (!(Number.isInteger(channels) && channels >= 1 && channels <= dim)) {
    throw new CuriaError('INVALID_ARGUMENT', `token channels must be in [1, ${dim}], got ${channels}`);
  }
  const total = samples.reduce((s, x) => {
    if (x.length % dim !== 0)
      throw new CuriaError('INTERNAL', `a token sample is not a multiple of D = ${dim}`);
    return s + x.length / dim;
  }, 0);
  if (total < channels + 1) {
    throw new CuriaError('INTERNAL', `${total} sample tokens cannot fit ${channels} principal directions`);
  }
  const stride = Math.max(1, Math.ceil(total / maxRows));
  const rows = Math.ceil(total / stride);
  const x = new Float32Array(rows * dim);
  let r = 0;
  let index = 0;
  for (const s of samples) {
    const n = s.length / dim;
    for (let t = 0; t < n; t++, index++) {
      if (index % stride !== 0) continue;
      x.set(s.subarray(t * dim, (t + 1) * dim), r * dim);
      r++;
    }
  }
  const mean = new Float64Array(dim);
  for (let i = 0; i < r; i++) for (let d = 0; d < dim; d++) mean[d]! += x[i * dim + d]!;
  for (let d = 0; d < dim; d++) mean[d]! /= r;
  for (let i = 0; i < r; i++) for (let d = 0; d < dim; d++) x[i * dim + d]! -= mean[d]!;
  const directions = principalDirections(x.subarray(0, r * dim), r, dim, channels);
  const basis = new Float32Array(dim * channels);
  for (let c = 0; c < channels; c++) {
    for (let d = 0; d < dim; d++) basis[d * channels + c] = directions[c * dim + d]!;
  }
  return { basis, mean: Float32Array.from(mean), dim, channels };
}
