import { FOLD_TEST, FOLD_TRAIN, type TrainingMeta } from '@curia/heads';
import type { heads } from '@curia/proto';

import type { StoredHead } from './store.js';

const METRIC_KEYS = {
  accuracy: 'accuracy',
  balanced_accuracy: 'balancedAccuracy',
  auc: 'auc',
  c_index: 'cIndex',
  mae: 'mae',
  rmse: 'rmse',
  r2: 'r2',
} as const;

function metricsOf(m: Record<string, number>, numTrain: number, numTest: number): heads.Metrics {
  const out: heads.Metrics = { numTrain, numTest };
  for (const [from, to] of Object.entries(METRIC_KEYS)) {
    const v = m[from];
    if (v !== undefined && Number.isFinite(v)) out[to] = v;
  }
  return out;
}

/** Sample standard deviation (N − 1) of each metric over folds. */
function stdOf(perFold: readonly Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of Object.keys(METRIC_KEYS)) {
    const vals = perFold.map((f) => f[key]).filter((v): v is number => v !== undefined && Number.isFinite(v));
    if (vals.length < 2) continue;
    const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
    out[key] = Math.sqrt(vals.reduce((a, v) => a + (v - mean) ** 2, 0) / (vals.length - 1));
  }
  return out;
}

/**
 * Cross-validation metrics in wire form. Folds carry the sample counts the engine records
 * (heads stored before it recorded them get n / k rounded); the totals are exact: each sample is
 * tested once and trained on k − 1 times.
 */
export function cvMetricsOf(cv: TrainingMeta['cv'], n: number): heads.CrossValidationMetrics | undefined {
  if (!cv) return undefined;
  const k = cv.folds;
  const perTest = Math.round(n / k);
  return {
    folds: cv.per_fold.map((f) => metricsOf(f, f[FOLD_TRAIN] ?? n - perTest, f[FOLD_TEST] ?? perTest)),
    mean: metricsOf(cv.metrics, n * (k - 1), n),
    std: metricsOf(stdOf(cv.per_fold), 0, 0),
  };
}

/** TrainingMetadata of a stored head (undefined for heads shipped without training metadata). */
export function trainingMetadataOf(s: StoredHead): heads.TrainingMetadata | undefined {
  const t = s.head.meta.training;
  if (!t) return undefined;
  const counts = t.class_counts ?? (t.n_events !== undefined ? [t.n_samples - t.n_events, t.n_events] : []);
  const opts = s.service.fitOptions as heads.FitOptions | undefined;
  const cv = cvMetricsOf(t.cv, t.n_samples);
  return {
    createdAt: new Date(t.created_at),
    numSamples: t.n_samples,
    classCounts: counts,
    ...(s.service.feature ? { feature: s.service.feature as heads.TrainingMetadata['feature'] } : {}),
    ...(opts ? { options: opts } : {}),
    ...(cv ? { cv } : {}),
    dataset: s.service.dataset,
  };
}
