import { CuriaError } from '@curia/errors';

/** An intensity similarity a registration reports before and after (not the one it optimises on features). */
export type SimilarityKind = 'mse' | 'ncc' | 'mi';

/** Histogram bins per image of {@link imageSimilarity}'s mutual information (Mattes uses 32 to 64). */
export const MI_BINS = 32;

/**
 * Similarity of two images on one grid over the voxels where `valid` is non-zero (all when absent;
 * typically the voxels whose moving sample fell inside the moving volume):
 * - `mse`: mean squared difference (lower is better);
 * - `ncc`: Pearson correlation in [−1, 1] (0 when either image is constant);
 * - `mi`: mutual information in nats of the joint histogram, {@link MI_BINS} bins over each image's
 *   own range (higher is better).
 * NaN when no voxel is valid.
 */
export function imageSimilarity(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  kind: SimilarityKind,
  valid?: Uint8Array,
): number {
  if (a.length !== b.length || (valid && valid.length !== a.length)) {
    throw new CuriaError('INTERNAL', `similarity of ${a.length} and ${b.length} voxels: not one grid`);
  }
  const inside = (q: number): boolean => !valid || valid[q] !== 0;
  let n = 0;
  if (kind === 'mse') {
    let s = 0;
    for (let q = 0; q < a.length; q++) {
      if (!inside(q)) continue;
      const d = a[q]! - b[q]!;
      s += d * d;
      n++;
    }
    return n ? s / n : Number.NaN;
  }
  if (kind === 'ncc') {
    let sa = 0,
      sb = 0;
    for (let q = 0; q < a.length; q++) {
      if (!inside(q)) continue;
      sa += a[q]!;
      sb += b[q]!;
      n++;
    }
    if (!n) return Number.NaN;
    const ma = sa / n,
      mb = sb / n;
    let ab = 0,
      aa = 0,
      bb = 0;
    for (let q = 0; q < a.length; q++) {
      if (!inside(q)) continue;
      const x = a[q]! - ma,
        y = b[q]! - mb;
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    return aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0;
  }
  const range = (v: ArrayLike<number>): [number, number] => {
    let lo = Infinity,
      hi = -Infinity;
    for (let q = 0; q < v.length; q++) {
      if (!inside(q)) continue;
      if (v[q]! < lo) lo = v[q]!;
      if (v[q]! > hi) hi = v[q]!;
    }
    return [lo, hi];
  };
  const [la, ha] = range(a);
  const [lb, hb] = range(b);
  if (!(la <= ha)) return Number.NaN;
  const bins = MI_BINS;
  const ka = ha > la ? (bins - 1e-9) / (ha - la) : 0;
  const kb = hb > lb ? (bins - 1e-9) / (hb - lb) : 0;
  const joint = new Float64Array(bins * bins);
  for (let q = 0; q < a.length; q++) {
    if (!inside(q)) continue;
    joint[Math.floor((a[q]! - la) * ka) * bins + Math.floor((b[q]! - lb) * kb)]!++;
    n++;
  }
  const pa = new Float64Array(bins);
  const pb = new Float64Array(bins);
  for (let i = 0; i < bins; i++)
    for (let j = 0; j < bins; j++) {
      pa[i]! += joint[i * bins + j]! / n;
      pb[j]! += joint[i * bins + j]! / n;
    }
  let mi = 0;
  for (let i = 0; i < bins; i++)
    for (let j = 0; j < bins; j++) {
      const p = joint[i * bins + j]! / n;
      if (p > 0) mi += p * Math.log(p / (pa[i]! * pb[j]!));
    }
  return mi;
}
