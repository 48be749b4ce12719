import { invalid, throwIfAborted } from '../errors.js';
import type { FeatureRequirement } from '../features.js';
import type { BackboneFingerprint } from '../fingerprint.js';
import { Head, validateHeadWeights, type Weight } from '../head.js';
import { HEAD_SCHEMA_VERSION, type HeadMeta, type TrainingMeta } from '../head-schema.js';
import { fitCox, type CoxTies } from './cox.js';
import {
  validateClassLabels,
  validateFeatures,
  validateSurvival,
  validateTargets,
  type FeatureMatrix,
  type SurvivalLabels,
} from './data.js';
import { assignFolds, splitFold } from './folds.js';
import { predictLinear } from './linear-model.js';
import { fitLogistic } from './logistic.js';
import { accuracy, aucMacroOvr, balancedAccuracy, concordanceIndex, regressionMetrics } from './metrics.js';
import { fitMlp, predictMlp, type MlpFit } from './mlp.js';
import {
  fitMultiLabelLogistic,
  isMultiLabels,
  multilabelMetrics,
  multilabelStrata,
  validateMultiLabels,
  type MultiLabels,
} from './multilabel.js';
import { fitRidge } from './ridge.js';

/** Fitting methods: multinomial logistic regression, ridge regression, small MLP, Cox PH. */
export type FitKind = 'logistic' | 'ridge' | 'mlp' | 'cox';

/** Options of {@link fitHead}. Every field has a default. */
export interface FitOptions {
  /** Seed for fold shuffling and MLP initialisation/batching (default 0). */
  readonly seed?: number;
  /** L2 penalty on standardised coefficients (defaults: logistic 1e-2, ridge 1, cox 1e-4, mlp 1e-4). */
  readonly l2?: number;
  /**
   * Logistic classification / multilabel: `balanced` class weighting (default none). Multilabel
   * balances positives and negatives of each label.
   */
  readonly classWeight?: 'balanced' | 'none';
  /** Number of classes (default max label + 1). */
  readonly numClasses?: number;
  /** Output names (default class_0.., or ['value'] / ['risk']). */
  readonly labelNames?: readonly string[];
  /** Cross-validation folds (default 5; 0 or 1 disables cross-validation). */
  readonly folds?: number;
  /** Cox ties handling (default efron). */
  readonly ties?: CoxTies;
  /** MLP task (default classification). */
  readonly task?: 'classification' | 'regression';
  /** MLP hidden widths (default [64]). */
  readonly hidden?: readonly number[];
  readonly learningRate?: number;
  readonly batchSize?: number;
  readonly maxEpochs?: number;
  readonly patience?: number;
  /** Iteration cap of L-BFGS / Newton (default 500 / 50). */
  readonly maxIter?: number;
  /** Features the rows are (default: post-LN CLS per slice, hidden = feature width). */
  readonly requirement?: FeatureRequirement;
  /** Backbone the features came from, recorded for compatibility checks. */
  readonly backbone?: BackboneFingerprint | null;
  readonly name?: string;
  readonly version?: string;
  readonly signal?: AbortSignal;
}

type Scores = (rows: readonly number[]) => Float64Array;

/** Keys of `training.cv.per_fold` entries holding the fold's train / test sample counts. */
export const FOLD_TRAIN = 'n_train';
/** See {@link FOLD_TRAIN}. */
export const FOLD_TEST = 'n_test';

interface Trainer {
  readonly outputs: number;
  train(
    idx: readonly number[],
  ): Promise<{ predict: Scores; weights: Map<string, Weight>; mlpSizes?: number[] }>;
  metrics(test: readonly number[], scores: Float64Array): Record<string, number>;
  readonly strata?: ArrayLike<number>;
}

const f32 = (a: Float64Array, shape: number[]): Weight => ({ shape, data: Float32Array.from(a) });

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

function classificationMetrics(y: Int32Array, k: number) {
  return (test: readonly number[], scores: Float64Array): Record<string, number> => {
    const yt = Int32Array.from(test, (i) => y[i]!);
    const pred = argmaxRows(scores, test.length, k);
    return {
      accuracy: accuracy(pred, yt),
      balanced_accuracy: balancedAccuracy(pred, yt, k),
      auc: aucMacroOvr(softmax64(scores, test.length, k), yt, k),
    };
  };
}

function mlpWeights(fit: MlpFit): Map<string, Weight> {
  const w = new Map<string, Weight>();
  fit.layers.forEach((l, i) => {
    w.set(`mlp.${i}.weight`, f32(l.weight, [fit.sizes[i + 1]!, fit.sizes[i]!]));
    w.set(`mlp.${i}.bias`, f32(l.bias, [fit.sizes[i + 1]!]));
  });
  return w;
}

/** Labels accepted by {@link fitHead}. */
export type FitLabels = ArrayLike<number> | SurvivalLabels | MultiLabels;

function makeTrainer(kind: FitKind, x: FeatureMatrix, labels: FitLabels, o: FitOptions, folds: number) {
  const d = x.cols;
  const isSurvival = typeof labels === 'object' && 'time' in labels && 'event' in labels;
  const seed = o.seed ?? 0;
  if (isMultiLabels(labels)) {
    if (kind !== 'logistic')
      throw invalid(`multilabel targets are fitted with logistic heads only (got ${kind})`);
    const m = validateMultiLabels(labels, x.rows, folds);
    const k = m.numLabels;
    const trainer: Trainer = {
      outputs: k,
      strata: multilabelStrata(m, x.rows),
      async train(idx) {
        const model = await fitMultiLabelLogistic(x, idx, m, {
          l2: o.l2 ?? 1e-2,
          classWeight: o.classWeight ?? 'none',
          maxIter: o.maxIter ?? 500,
          signal: o.signal,
        });
        return {
          predict: (rows) => predictLinear(model, x, rows),
          weights: new Map([
            ['classifier.weight', f32(model.weight, [k, d])],
            ['classifier.bias', f32(model.bias, [k])],
          ]),
        };
      },
      metrics: (test, scores) => multilabelMetrics(m, test, scores),
    };
    return { trainer, task: 'multilabel' as const, extra: { class_counts: m.positives } };
  }
  if (kind === 'cox') {
    if (!isSurvival) throw invalid('cox fitting needs survival labels { time, event }');
    const s = validateSurvival(labels, x.rows);
    if (s.events < folds)
      throw invalid(`only ${s.events} event(s); ${folds}-fold cross-validation needs at least one per fold`);
    const trainer: Trainer = {
      outputs: 1,
      strata: s.event,
      async train(idx) {
        const fit = await fitCox(x, idx, s.time, s.event, {
          ties: o.ties ?? 'efron',
          l2: o.l2 ?? 1e-4,
          maxIter: o.maxIter ?? 50,
          signal: o.signal,
        });
        const weights = new Map<string, Weight>([
          ['cox.weight', f32(fit.model.weight, [1, d])],
          ['cox.bias', f32(fit.model.bias, [1])],
          ['cox.baseline_times', f32(fit.baselineTimes, [fit.baselineTimes.length])],
          ['cox.baseline_cumhaz', f32(fit.baselineCumHazard, [fit.baselineCumHazard.length])],
        ]);
        return { predict: (rows) => predictLinear(fit.model, x, rows), weights };
      },
      metrics: (test, scores) => ({
        c_index: concordanceIndex(
          Float64Array.from(test, (i) => s.time[i]!),
          Uint8Array.from(test, (i) => s.event[i]!),
          scores,
        ),
      }),
    };
    return { trainer, task: 'survival' as const, extra: { n_events: s.events } };
  }
  if (isSurvival) throw invalid(`${kind} fitting needs numeric labels, not survival labels`);
  if (!('length' in labels)) throw invalid(`${kind} fitting needs one numeric label per row`);
  const task =
    kind === 'ridge' ? 'regression' : kind === 'mlp' ? (o.task ?? 'classification') : 'classification';
  if (task === 'regression') {
    const y = validateTargets(labels, x.rows);
    if (x.rows < Math.max(2, folds))
      throw invalid(`regression needs at least ${Math.max(2, folds)} samples (got ${x.rows})`);
    const metrics = (test: readonly number[], scores: Float64Array): Record<string, number> =>
      regressionMetrics(
        scores,
        Float64Array.from(test, (i) => y[i]!),
      );
    const trainer: Trainer =
      kind === 'ridge'
        ? {
            outputs: 1,
            train(idx) {
              const m = fitRidge(x, idx, y, o.l2 ?? 1);
              return Promise.resolve({
                predict: (rows: readonly number[]) => predictLinear(m, x, rows),
                weights: new Map([
                  ['classifier.weight', f32(m.weight, [1, d])],
                  ['classifier.bias', f32(m.bias, [1])],
                ]),
              });
            },
            metrics,
          }
        : {
            outputs: 1,
            async train(idx) {
              const fit = await fitMlp(x, idx, y, mlpOptions(o, 'regression', 1, seed));
              return {
                predict: (rows) => predictMlp(fit, x, rows),
                weights: mlpWeights(fit),
                mlpSizes: fit.sizes,
              };
            },
            metrics,
          };
    return { trainer, task, extra: {} };
  }
  const c = validateClassLabels(labels, x.rows, o.numClasses, folds);
  const k = c.numClasses;
  const trainer: Trainer =
    kind === 'logistic'
      ? {
          outputs: k,
          strata: c.y,
          async train(idx) {
            const m = await fitLogistic(x, idx, c.y, k, {
              l2: o.l2 ?? 1e-2,
              classWeight: o.classWeight ?? 'none',
              maxIter: o.maxIter ?? 500,
              signal: o.signal,
            });
            return {
              predict: (rows) => predictLinear(m, x, rows),
              weights: new Map([
                ['classifier.weight', f32(m.weight, [k, d])],
                ['classifier.bias', f32(m.bias, [k])],
              ]),
            };
          },
          metrics: classificationMetrics(c.y, k),
        }
      : {
          outputs: k,
          strata: c.y,
          async train(idx) {
            const fit = await fitMlp(x, idx, c.y, mlpOptions(o, 'classification', k, seed));
            return {
              predict: (rows) => predictMlp(fit, x, rows),
              weights: mlpWeights(fit),
              mlpSizes: fit.sizes,
            };
          },
          metrics: classificationMetrics(c.y, k),
        };
  return { trainer, task, extra: { class_counts: c.counts } };
}

function mlpOptions(o: FitOptions, task: 'classification' | 'regression', outputs: number, seed: number) {
  return {
    task,
    outputs,
    hidden: o.hidden ?? [64],
    learningRate: o.learningRate ?? 1e-3,
    batchSize: o.batchSize ?? 32,
    maxEpochs: o.maxEpochs ?? 200,
    patience: o.patience ?? 15,
    validationFraction: 0.15,
    l2: o.l2 ?? 1e-4,
    seed,
    signal: o.signal,
  };
}

function meanMetrics(perFold: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of Object.keys(perFold[0] ?? {})) {
    const vals = perFold.map((m) => m[key]!).filter((v) => Number.isFinite(v));
    if (vals.length > 0) out[key] = vals.reduce((a, b) => a + b, 0) / vals.length;
  }
  return out;
}

/** JSON-safe record of the options that shaped a fit. */
function recordOptions(kind: FitKind, o: FitOptions): Record<string, unknown> {
  const { signal: _s, requirement: _r, backbone: _b, labelNames: _l, name: _n, version: _v, ...rest } = o;
  return { kind, ...rest };
}

/**
 * Fits a head on feature rows (one sample per row, as the requirement describes) and returns a
 * native head bundle with training metadata, cross-validated metrics (k-fold, stratified by class,
 * by event status, or by each row's rarest label for multilabel targets), deterministic for a
 * given seed. Multilabel targets ({@link MultiLabels}, kind `logistic`) give a `multilabel` head:
 * one independent sigmoid logistic per label. Validation problems throw
 * INVALID_ARGUMENT naming the row, class or field.
 */
export async function fitHead(
  kind: FitKind,
  features: FeatureMatrix,
  labels: FitLabels,
  options: FitOptions = {},
): Promise<Head> {
  validateFeatures(features);
  const folds = options.folds ?? 5;
  if (!Number.isInteger(folds) || folds < 0)
    throw invalid(`folds must be a non-negative integer (got ${folds})`);
  const req: FeatureRequirement = options.requirement ?? {
    inputs: [{ kind: 'cls', norm: 'post' }],
    slices: 'each',
    mask: false,
    hidden: features.cols,
  };
  if (req.slices !== 'each' || req.inputs.some((i) => i.kind === 'avg_pooled_tokens' && i.k !== 0)) {
    throw invalid(
      'fitted heads take one feature vector per slice (slices: each; cls, mask_pooled or globally averaged tokens, k = 0)',
    );
  }
  if (req.inputs.length * req.hidden !== features.cols) {
    throw invalid(
      `features have ${features.cols} columns but the requirement gives ${req.inputs.length} × ${req.hidden}`,
    );
  }
  const { trainer, task, extra } = makeTrainer(kind, features, labels, options, folds);
  const seed = options.seed ?? 0;
  let cv: TrainingMeta['cv'] = null;
  if (folds >= 2) {
    const assignment = assignFolds(features.rows, folds, seed, trainer.strata);
    const perFold: Record<string, number>[] = [];
    const sizes: Record<string, number>[] = [];
    for (let f = 0; f < folds; f++) {
      throwIfAborted(options.signal, 'cross-validation');
      const { train, test } = splitFold(assignment, f);
      const m = await trainer.train(train);
      perFold.push(trainer.metrics(test, m.predict(test)));
      sizes.push({ [FOLD_TRAIN]: train.length, [FOLD_TEST]: test.length });
    }
    cv = {
      folds,
      metrics: meanMetrics(perFold),
      per_fold: perFold.map((f, i) => ({ ...f, ...sizes[i] })),
    };
  }
  const all = Array.from({ length: features.rows }, (_, i) => i);
  const final = await trainer.train(all);
  const outputs = trainer.outputs;
  const labelNames = options.labelNames
    ? [...options.labelNames]
    : task === 'classification' || task === 'multilabel'
      ? Array.from({ length: outputs }, (_, i) => `${task === 'multilabel' ? 'label' : 'class'}_${i}`)
      : [task === 'survival' ? 'risk' : 'value'];
  if (labelNames.length !== outputs)
    throw invalid(`labelNames has ${labelNames.length} names for ${outputs} outputs`);
  const usesMask = req.inputs.some((i) => i.kind === 'mask_pooled');
  const headKind: HeadMeta['kind'] =
    kind === 'cox' ? 'cox' : kind === 'mlp' ? 'mlp' : usesMask ? 'mask-linear' : 'cls-linear';
  const now = new Date().toISOString();
  const meta: HeadMeta = {
    schema_version: HEAD_SCHEMA_VERSION,
    name: options.name ?? `${kind}-head`,
    version: options.version ?? '1',
    kind: headKind,
    task,
    labels: labelNames,
    requirements: { ...req, mask: req.mask || usesMask },
    architecture: {
      input_dim: features.cols,
      outputs,
      ...(final.mlpSizes ? { mlp_sizes: final.mlpSizes } : {}),
    },
    backbone: options.backbone ?? null,
    provenance: { source: 'fit', created_at: now },
    training: {
      method: kind,
      n_samples: features.rows,
      n_features: features.cols,
      ...extra,
      cv,
      seed,
      options: recordOptions(kind, options),
      created_at: now,
    },
  };
  const head = new Head(meta, final.weights);
  validateHeadWeights(head);
  return head;
}
