import { Rng } from '../math/rng.js';

/**
 * Assigns each of `n` samples to one of `k` folds, shuffled with `seed`. With `strata`, each
 * stratum is dealt round-robin so every fold gets a near-equal share of it (stratified k-fold).
 */
export function assignFolds(n: number, k: number, seed: number, strata?: ArrayLike<number>): Int32Array {
  const rng = new Rng(seed ^ 0x5f3759df);
  const fold = new Int32Array(n);
  const groups = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const s = strata ? strata[i]! : 0;
    let g = groups.get(s);
    if (!g) groups.set(s, (g = []));
    g.push(i);
  }
  let next = 0;
  for (const key of [...groups.keys()].sort((a, b) => a - b)) {
    for (const i of rng.shuffle(groups.get(key)!)) {
      fold[i] = next;
      next = (next + 1) % k;
    }
  }
  return fold;
}

/** Train and test row indices of fold `f`. */
export function splitFold(fold: Int32Array, f: number): { train: number[]; test: number[] } {
  const train: number[] = [];
  const test: number[] = [];
  fold.forEach((v, i) => (v === f ? test : train).push(i));
  return { train, test };
}
