/** Fraction of predictions equal to the label. */
export function accuracy(pred: ArrayLike<number>, y: ArrayLike<number>): number {
  let ok = 0;
  for (let i = 0; i < y.length; i++) if (pred[i] === y[i]) ok++;
  return ok / y.length;
}

/** Mean per-class recall over the classes present in `y`. */
export function balancedAccuracy(pred: ArrayLike<number>, y: ArrayLike<number>, numClasses: number): number {
  const tp = new Float64Array(numClasses);
  const n = new Float64Array(numClasses);
  for (let i = 0; i < y.length; i++) {
    n[y[i]!]!++;
    if (pred[i] === y[i]) tp[y[i]!]!++;
  }
  let s = 0;
  let k = 0;
  for (let c = 0; c < numClasses; c++) {
    if (n[c]! > 0) {
      s += tp[c]! / n[c]!;
      k++;
    }
  }
  return s / k;
}

/** ROC AUC of `score` for `positive` (Mann–Whitney U with average ranks for ties); NaN if one class is absent. */
export function aucBinary(score: ArrayLike<number>, positive: ArrayLike<number | boolean>): number {
  const n = score.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => score[a]! - score[b]!);
  let rankSumPos = 0;
  let nPos = 0;
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && score[order[j + 1]!] === score[order[i]!]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (positive[order[k]!]) {
        rankSumPos += avgRank;
        nPos++;
      }
    }
    i = j + 1;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** Macro one-vs-rest AUC from [n, K] probabilities (binary: AUC of class 1). */
export function aucMacroOvr(prob: Float64Array, y: ArrayLike<number>, numClasses: number): number {
  const n = y.length;
  if (numClasses === 2) {
    return aucBinary(
      Float64Array.from({ length: n }, (_, i) => prob[i * 2 + 1]!),
      Uint8Array.from({ length: n }, (_, i) => (y[i] === 1 ? 1 : 0)),
    );
  }
  let s = 0;
  let k = 0;
  for (let c = 0; c < numClasses; c++) {
    const a = aucBinary(
      Float64Array.from({ length: n }, (_, i) => prob[i * numClasses + c]!),
      Uint8Array.from({ length: n }, (_, i) => (y[i] === c ? 1 : 0)),
    );
    if (!Number.isNaN(a)) {
      s += a;
      k++;
    }
  }
  return k > 0 ? s / k : NaN;
}

/**
 * Harrell's concordance index: over pairs with t_i < t_j and an event at t_i, the fraction where
 * the earlier failure has the higher risk (ties in risk count ½).
 */
export function concordanceIndex(
  time: ArrayLike<number>,
  event: ArrayLike<number>,
  risk: ArrayLike<number>,
): number {
  let num = 0;
  let den = 0;
  const n = time.length;
  for (let i = 0; i < n; i++) {
    if (!event[i]) continue;
    const ti = time[i]!;
    const ri = risk[i]!;
    for (let j = 0; j < n; j++) {
      if (time[j]! <= ti) continue;
      den++;
      const rj = risk[j]!;
      if (ri > rj) num++;
      else if (ri === rj) num += 0.5;
    }
  }
  return den > 0 ? num / den : NaN;
}

/** Mean absolute error, root mean squared error and coefficient of determination. */
export function regressionMetrics(
  pred: ArrayLike<number>,
  y: ArrayLike<number>,
): { mae: number; rmse: number; r2: number } {
  const n = y.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += y[i]!;
  mean /= n;
  let ae = 0;
  let se = 0;
  let st = 0;
  for (let i = 0; i < n; i++) {
    const d = pred[i]! - y[i]!;
    ae += Math.abs(d);
    se += d * d;
    st += (y[i]! - mean) ** 2;
  }
  return { mae: ae / n, rmse: Math.sqrt(se / n), r2: st > 0 ? 1 - se / st : NaN };
}
