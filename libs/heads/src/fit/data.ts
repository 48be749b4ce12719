import { invalid } from '../errors.js';

/** A [rows, cols] row-major feature matrix (one sample per row). */
export interface FeatureMatrix {
  readonly data: Float32Array | Float64Array;
  readonly rows: number;
  readonly cols: number;
}

/** Right-censored survival labels: follow-up time and event indicator (1 = event, 0 = censored). */
export interface SurvivalLabels {
  readonly time: ArrayLike<number>;
  readonly event: ArrayLike<number | boolean>;
}

/** Checks dims and finiteness; INVALID_ARGUMENT names the first bad row. */
export function validateFeatures(x: FeatureMatrix): void {
  if (!Number.isInteger(x.rows) || !Number.isInteger(x.cols) || x.rows < 1 || x.cols < 1) {
    throw invalid(`features must be a non-empty matrix (got ${x.rows} rows × ${x.cols} cols)`);
  }
  if (x.data.length !== x.rows * x.cols) {
    throw invalid(
      `features has ${x.data.length} values but rows × cols = ${x.rows} × ${x.cols} = ${x.rows * x.cols}`,
    );
  }
  for (let i = 0; i < x.data.length; i++) {
    if (!Number.isFinite(x.data[i]!)) {
      throw invalid(`features row ${Math.floor(i / x.cols)} (column ${i % x.cols}) is NaN or infinite`);
    }
  }
}

/** Validated class labels and per-class counts. */
export interface ClassLabels {
  readonly y: Int32Array;
  readonly numClasses: number;
  readonly counts: number[];
}

/**
 * Checks integer class labels in [0, numClasses): at least two classes, and every class with
 * at least 2 samples and at least `folds` samples when cross-validating.
 */
export function validateClassLabels(
  labels: ArrayLike<number>,
  rows: number,
  numClasses: number | undefined,
  folds: number,
): ClassLabels {
  if (labels.length !== rows) throw invalid(`labels has ${labels.length} entries for ${rows} feature rows`);
  let max = -1;
  for (let i = 0; i < rows; i++) {
    const v = labels[i]!;
    if (!Number.isInteger(v) || v < 0)
      throw invalid(`label of row ${i} must be a non-negative integer class index`);
    max = Math.max(max, v);
  }
  const k = numClasses ?? max + 1;
  if (max >= k) throw invalid(`label ${max} is out of range for numClasses ${k}`);
  const counts = new Array<number>(k).fill(0);
  for (let i = 0; i < rows; i++) counts[labels[i]!]!++;
  const present = counts.filter((c) => c > 0).length;
  if (present < 2) throw invalid(`labels contain a single class; classification needs at least two`);
  const need = Math.max(2, folds);
  counts.forEach((c, cls) => {
    if (c < need) {
      throw invalid(
        `class ${cls} has ${c} sample(s); each class needs at least ${need}${folds >= 2 ? ` for ${folds}-fold cross-validation` : ''}`,
      );
    }
  });
  return { y: Int32Array.from({ length: rows }, (_, i) => labels[i]!), numClasses: k, counts };
}

/** Checks finite regression targets. */
export function validateTargets(labels: ArrayLike<number>, rows: number): Float64Array {
  if (labels.length !== rows) throw invalid(`labels has ${labels.length} entries for ${rows} feature rows`);
  const y = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    const v = labels[i]!;
    if (!Number.isFinite(v)) throw invalid(`target of row ${i} is NaN or infinite`);
    y[i] = v;
  }
  return y;
}

/** Checks survival labels: finite non-negative times, 0/1 events, at least one event. */
export function validateSurvival(
  labels: SurvivalLabels,
  rows: number,
): { time: Float64Array; event: Uint8Array; events: number } {
  if (labels.time.length !== rows || labels.event.length !== rows) {
    throw invalid(
      `survival labels have ${labels.time.length} times and ${labels.event.length} events for ${rows} feature rows`,
    );
  }
  const time = new Float64Array(rows);
  const event = new Uint8Array(rows);
  let events = 0;
  for (let i = 0; i < rows; i++) {
    const t = labels.time[i]!;
    if (!Number.isFinite(t) || t < 0)
      throw invalid(`survival time of row ${i} must be finite and non-negative`);
    const e = labels.event[i]!;
    const ev = e === true || e === 1 ? 1 : e === false || e === 0 ? 0 : -1;
    if (ev < 0) throw invalid(`event of row ${i} must be 0/1 or boolean`);
    time[i] = t;
    event[i] = ev;
    events += ev;
  }
  if (events === 0)
    throw invalid('survival labels contain no events (all rows censored); a Cox model cannot be fitted');
  return { time, event, events };
}

/** Per-column mean and standard deviation (population; near-constant columns get std 1). */
export interface Standardizer {
  readonly mean: Float64Array;
  readonly std: Float64Array;
}

/** Computes column statistics over the given rows (all rows by default). */
export function fitStandardizer(x: FeatureMatrix, rows?: ArrayLike<number>): Standardizer {
  const { cols } = x;
  const idx = rows ?? Array.from({ length: x.rows }, (_, i) => i);
  const n = idx.length;
  const mean = new Float64Array(cols);
  const sq = new Float64Array(cols);
  for (let r = 0; r < n; r++) {
    const o = idx[r]! * cols;
    for (let c = 0; c < cols; c++) mean[c]! += x.data[o + c]!;
  }
  for (let c = 0; c < cols; c++) mean[c]! /= n;
  for (let r = 0; r < n; r++) {
    const o = idx[r]! * cols;
    for (let c = 0; c < cols; c++) {
      const d = x.data[o + c]! - mean[c]!;
      sq[c]! += d * d;
    }
  }
  const std = new Float64Array(cols);
  for (let c = 0; c < cols; c++) {
    const s = Math.sqrt(sq[c]! / n);
    std[c] = s > 1e-12 * Math.max(1, Math.abs(mean[c]!)) ? s : 1;
  }
  return { mean, std };
}

/** Standardised copy of the selected rows, [idx.length, cols] as Float64Array. */
export function standardizeRows(x: FeatureMatrix, s: Standardizer, rows: ArrayLike<number>): Float64Array {
  const { cols } = x;
  const out = new Float64Array(rows.length * cols);
  for (let r = 0; r < rows.length; r++) {
    const o = rows[r]! * cols;
    const oo = r * cols;
    for (let c = 0; c < cols; c++) out[oo + c] = (x.data[o + c]! - s.mean[c]!) / s.std[c]!;
  }
  return out;
}
