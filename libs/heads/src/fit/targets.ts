import { invalid } from '../errors.js';
import type { TrainingMeta } from '../head-schema.js';
import {
  validateClassLabels,
  validateSurvival,
  validateTargets,
  type ClassLabels,
  type SurvivalLabels,
} from './data.js';
import { accuracy, aucMacroOvr, balancedAccuracy, concordanceIndex, regressionMetrics } from './metrics.js';
import {
  multilabelMetrics,
  multilabelStrata,
  validateMultiLabels,
  type MultiLabels,
  type ValidMultiLabels,
} from './multilabel.js';

/** What a fitted head predicts. */
export type FitTask = 'classification' | 'multilabel' | 'regression' | 'survival';

/** Labels as the task they were recognised as (see `fitHead`). */
export type TaskLabels =
  | { readonly task: 'classification' | 'regression'; readonly labels: ArrayLike<number> }
  | { readonly task: 'multilabel'; readonly labels: MultiLabels }
  | { readonly task: 'survival'; readonly labels: SurvivalLabels };

/** Validated training targets, with how cross-validation stratifies and scores them. */
interface TargetsBase<T extends FitTask> {
  readonly task: T;
  /** Output width of the head. */
  readonly outputs: number;
  /** Fold strata (undefined: plain shuffled folds). */
  readonly strata?: ArrayLike<number>;
  /** Label statistics recorded in the head's training metadata. */
  readonly extra: Pick<TrainingMeta, 'class_counts' | 'n_events'>;
  /** Metrics of `scores` ([test.length, outputs]) on the rows `test`. */
  metrics(test: readonly number[], scores: Float64Array): Record<string, number>;
}

/** Class indices in [0, numClasses). */
export interface ClassTargets extends TargetsBase<'classification'>, ClassLabels {}
/** A 0/1 indicator per (row, label). */
export interface MultiLabelTargets extends TargetsBase<'multilabel'> {
  readonly labels: ValidMultiLabels;
}
/** One finite value per row. */
export interface RegressionTargets extends TargetsBase<'regression'> {
  readonly y: Float64Array;
}
/** Follow-up time and event flag per row. */
export interface SurvivalTargets extends TargetsBase<'survival'> {
  readonly time: Float64Array;
  readonly event: Uint8Array;
}

/** The targets type of each task. */
export interface TargetsOf {
  readonly classification: ClassTargets;
  readonly multilabel: MultiLabelTargets;
  readonly regression: RegressionTargets;
  readonly survival: SurvivalTargets;
}

/** Validated targets of any task. */
export type Targets = TargetsOf[FitTask];

function argmaxRows(s: Float64Array, rows: number, k: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (s[r * k + c]! > s[r * k + best]!) best = c;
    out[r] = best;
  }
  return out;
}

function softmax64(s: Float64Array, rows: number, k: number): Float64Array {
  const out = new Float64Array(s.length);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < k; c++) m = Math.max(m, s[r * k + c]!);
    let z = 0;
    for (let c = 0; c < k; c++) z += out[r * k + c] = Math.exp(s[r * k + c]! - m);
    for (let c = 0; c < k; c++) out[r * k + c]! /= z;
  }
  return out;
}

/**
 * Checks the labels of a fit on `rows` samples with `folds`-fold cross-validation (INVALID_ARGUMENT
 * naming the row, class or label) and returns them with their cross-validation strata and metrics.
 */
export function targetsOf(
  t: TaskLabels,
  rows: number,
  folds: number,
  numClasses: number | undefined,
): Targets {
  switch (t.task) {
    case 'classification': {
      const c = validateClassLabels(t.labels, rows, numClasses, folds);
      const k = c.numClasses;
      return {
        ...c,
        task: 'classification',
        outputs: k,
        strata: c.y,
        extra: { class_counts: c.counts },
        metrics(test, scores) {
          const yt = Int32Array.from(test, (i) => c.y[i]!);
          const pred = argmaxRows(scores, test.length, k);
          return {
            accuracy: accuracy(pred, yt),
            balanced_accuracy: balancedAccuracy(pred, yt, k),
            auc: aucMacroOvr(softmax64(scores, test.length, k), yt, k),
          };
        },
      };
    }
    case 'multilabel': {
      const m = validateMultiLabels(t.labels, rows, folds);
      return {
        task: 'multilabel',
        labels: m,
        outputs: m.numLabels,
        strata: multilabelStrata(m, rows),
        extra: { class_counts: m.positives },
        metrics: (test, scores) => multilabelMetrics(m, test, scores),
      };
    }
    case 'regression': {
      const y = validateTargets(t.labels, rows);
      if (rows < Math.max(2, folds))
        throw invalid(`regression needs at least ${Math.max(2, folds)} samples (got ${rows})`);
      return {
        task: 'regression',
        y,
        outputs: 1,
        extra: {},
        metrics: (test, scores) =>
          regressionMetrics(
            scores,
            Float64Array.from(test, (i) => y[i]!),
          ),
      };
    }
    case 'survival': {
      const s = validateSurvival(t.labels, rows);
      if (s.events < folds)
        throw invalid(
          `only ${s.events} event(s); ${folds}-fold cross-validation needs at least one per fold`,
        );
      return {
        task: 'survival',
        time: s.time,
        event: s.event,
        outputs: 1,
        strata: s.event,
        extra: { n_events: s.events },
        metrics: (test, scores) => ({
          c_index: concordanceIndex(
            Float64Array.from(test, (i) => s.time[i]!),
            Uint8Array.from(test, (i) => s.event[i]!),
            scores,
          ),
        }),
      };
    }
  }
}
