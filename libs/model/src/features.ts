import { CuriaError } from '@curia/errors';

/** How one image's token sequence is laid out: CLS, then registers, then grid² patch tokens. */
export interface TokenLayout {
  /** Tokens per image (1 + registers + patches). */
  readonly tokens: number;
  /** Channels per token (D). */
  readonly hidden: number;
  readonly numRegisterTokens: number;
}

function checkSequence(seq: Float32Array, layout: TokenLayout, image: number): number {
  const per = layout.tokens * layout.hidden;
  if (seq.length % per !== 0) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `token array length ${seq.length} is not a multiple of tokens × hidden = ${per}`,
    );
  }
  const batch = seq.length / per;
  if (!Number.isSafeInteger(image) || image < 0 || image >= batch) {
    throw new CuriaError('OUT_OF_RANGE', `image index ${image} is outside the batch of ${batch}`);
  }
  return image * per;
}

/** The CLS token (D values) of image `image` in a (B, T, D) sequence; a zero-copy view. */
export function clsToken(seq: Float32Array, layout: TokenLayout, image = 0): Float32Array {
  const at = checkSequence(seq, layout, image);
  return seq.subarray(at, at + layout.hidden);
}

/** CLS rows of every image of a (B, T, D) sequence as a new (B, D) array (HF `pooler_output`). */
export function clsTokens(seq: Float32Array, layout: TokenLayout): Float32Array {
  const batch = seq.length / (layout.tokens * layout.hidden);
  checkSequence(seq, layout, 0);
  const out = new Float32Array(batch * layout.hidden);
  for (let b = 0; b < batch; b++) out.set(clsToken(seq, layout, b), b * layout.hidden);
  return out;
}

/**
 * The patch tokens ((T − 1 − registers), D), row-major over the patch grid, of image `image`,
 * skipping CLS and register tokens; a zero-copy view (patches are contiguous).
 */
export function patchTokens(seq: Float32Array, layout: TokenLayout, image = 0): Float32Array {
  const at = checkSequence(seq, layout, image);
  const skip = (1 + layout.numRegisterTokens) * layout.hidden;
  return seq.subarray(at + skip, at + layout.tokens * layout.hidden);
}

function gridOf(patches: Float32Array, hidden: number): number {
  if (!Number.isSafeInteger(hidden) || hidden <= 0 || patches.length % hidden !== 0) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `patch token array length ${patches.length} is not a multiple of hidden ${hidden}`,
    );
  }
  const n = patches.length / hidden;
  const grid = Math.round(Math.sqrt(n));
  if (grid * grid !== n || n === 0) {
    throw new CuriaError('INVALID_ARGUMENT', `${n} patch tokens do not form a square grid`);
  }
  return grid;
}

/**
 * Max-pools a square image mask (side S, any non-zero value counts as inside) to the G×G token
 * grid: a token is selected when any pixel of its (S/G)² patch is inside. Returns G² 0/1 flags.
 */
export function maskToTokenGrid(mask: ArrayLike<number>, grid: number): Uint8Array {
  const side = Math.round(Math.sqrt(mask.length));
  if (side * side !== mask.length || side % grid !== 0) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `mask of ${mask.length} values is not a square image divisible into a ${grid}×${grid} grid`,
    );
  }
  const p = side / grid;
  const out = new Uint8Array(grid * grid);
  for (let y = 0; y < side; y++) {
    const row = y * side;
    const gRow = Math.floor(y / p) * grid;
    for (let x = 0; x < side; x++) if (mask[row + x] !== 0) out[gRow + Math.floor(x / p)] = 1;
  }
  return out;
}

/**
 * Curia's mask pooling for one image: the mask (S×S, e.g. 512×512) is max-pooled to the token
 * grid ({@link maskToTokenGrid}), then the selected patch tokens are averaged.
 * `patches` are one image's post-LayerNorm patch tokens (G², D) — see {@link patchTokens}.
 * INVALID_ARGUMENT when the mask selects no token (the mean would be undefined).
 */
export function maskPool(patches: Float32Array, mask: ArrayLike<number>, hidden: number): Float32Array {
  const grid = gridOf(patches, hidden);
  const sel = maskToTokenGrid(mask, grid);
  const out = new Float64Array(hidden);
  let count = 0;
  for (let t = 0; t < sel.length; t++) {
    if (!sel[t]) continue;
    count++;
    const base = t * hidden;
    for (let c = 0; c < hidden; c++) out[c]! += patches[base + c]!;
  }
  if (count === 0) throw new CuriaError('INVALID_ARGUMENT', 'mask selects no patch token (it is empty)');
  const res = new Float32Array(hidden);
  for (let c = 0; c < hidden; c++) res[c] = out[c]! / count;
  return res;
}

/**
 * k×k average pooling of one image's patch grid, as torch `AvgPool2d(kernel_size=k, stride=k)`
 * over (D, G, G) (floor mode: trailing rows/columns that do not fill a window are dropped).
 * Input (G², D) token-major; output ((⌊G/k⌋)², D) token-major, row-major over the pooled grid.
 */
export function avgPoolTokens(patches: Float32Array, k: number, hidden: number): Float32Array {
  const grid = gridOf(patches, hidden);
  if (!Number.isSafeInteger(k) || k <= 0 || k > grid) {
    throw new CuriaError('INVALID_ARGUMENT', `kernel_size ${k} must be an integer in [1, ${grid}]`);
  }
  const g2 = Math.floor(grid / k);
  const out = new Float32Array(g2 * g2 * hidden);
  const acc = new Float64Array(hidden);
  const inv = 1 / (k * k);
  for (let oy = 0; oy < g2; oy++) {
    for (let ox = 0; ox < g2; ox++) {
      acc.fill(0);
      for (let dy = 0; dy < k; dy++) {
        for (let dx = 0; dx < k; dx++) {
          const base = ((oy * k + dy) * grid + ox * k + dx) * hidden;
          for (let c = 0; c < hidden; c++) acc[c]! += patches[base + c]!;
        }
      }
      const o = (oy * g2 + ox) * hidden;
      for (let c = 0; c < hidden; c++) out[o + c] = acc[c]! * inv;
    }
  }
  return out;
}

/** Most directions a token projection may have (`ProjectedTokensFeature`: 1 ≤ C ≤ 64). */
export const MAX_PROJECTION_CHANNELS = 64;

/**
 * Projects token rows onto `channels` directions: row t becomes `(x_t − mean) · basis`.
 * `patches` is (N, D) token-major (e.g. one image's {@link patchTokens}), `basis` (D, C) row-major
 * (column c = direction c: element `d·C + c`), `mean` (D) or undefined for zero. Returns (N, C)
 * token-major. The mean is subtracted first (pre-LayerNorm tokens have channels in the hundreds,
 * where `x·B − mean·B` would cancel) and sums run in float64. INVALID_ARGUMENT on inconsistent
 * sizes; values are not checked (the caller validates basis and mean once).
 *
 * Cost: N·D·C multiply-adds, ~25 ms for 1024 tokens at D = 768, C = 64 on one core.
 */
export function projectTokens(
  patches: Float32Array,
  basis: Float32Array,
  mean: Float32Array | undefined,
  hidden: number,
  channels: number,
): Float32Array {
  if (!Number.isSafeInteger(hidden) || hidden <= 0 || patches.length % hidden !== 0) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `token array length ${patches.length} is not a multiple of hidden ${hidden}`,
    );
  }
  if (!Number.isSafeInteger(channels) || channels <= 0 || basis.length !== hidden * channels) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `projection basis has ${basis.length} values; hidden ${hidden} × channels ${channels} needs ${hidden * channels}`,
    );
  }
  if (mean && mean.length !== hidden) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `projection mean has ${mean.length} values; hidden is ${hidden}`,
    );
  }
  const n = patches.length / hidden;
  const out = new Float32Array(n * channels);
  // Directions as contiguous rows (C', D), C' = C rounded up to 4 with zero rows, so the kernel
  // below computes 2 tokens × 4 directions per pass over D (each load feeds several sums).
  const padded = Math.ceil(channels / 4) * 4;
  const dirs = new Float64Array(padded * hidden);
  for (let d = 0; d < hidden; d++)
    for (let c = 0; c < channels; c++) dirs[c * hidden + d] = basis[d * channels + c]!;
  // Two centred tokens; the second stays zero when N is odd.
  const x = new Float64Array(2 * hidden);
  for (let t = 0; t < n; t += 2) {
    const pair = t + 1 < n;
    const a = t * hidden;
    for (let d = 0; d < hidden; d++) x[d] = patches[a + d]! - (mean ? mean[d]! : 0);
    if (pair)
      for (let d = 0; d < hidden; d++) x[hidden + d] = patches[a + hidden + d]! - (mean ? mean[d]! : 0);
    else x.fill(0, hidden);
    for (let c = 0; c < padded; c += 4) {
      const r0 = c * hidden;
      const r1 = r0 + hidden;
      const r2 = r1 + hidden;
      const r3 = r2 + hidden;
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      let b0 = 0;
      let b1 = 0;
      let b2 = 0;
      let b3 = 0;
      for (let d = 0; d < hidden; d++) {
        const xa = x[d]!;
        const xb = x[hidden + d]!;
        const w0 = dirs[r0 + d]!;
        const w1 = dirs[r1 + d]!;
        const w2 = dirs[r2 + d]!;
        const w3 = dirs[r3 + d]!;
        a0 += xa * w0;
        a1 += xa * w1;
        a2 += xa * w2;
        a3 += xa * w3;
        b0 += xb * w0;
        b1 += xb * w1;
        b2 += xb * w2;
        b3 += xb * w3;
      }
      const sums = [a0, a1, a2, a3, b0, b1, b2, b3];
      for (let k = 0; k < 4 && c + k < channels; k++) {
        out[t * channels + c + k] = sums[k]!;
        if (pair) out[(t + 1) * channels + c + k] = sums[4 + k]!;
      }
    }
  }
  return out;
}
