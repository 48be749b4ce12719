import { invalid, throwIfAborted } from '../errors.js';
import type { FeatureRequirement } from '../features.js';
import type { BackboneFingerprint } from '../fingerprint.js';
import type { Weight } from '../head-model.js';
import { Head, validateHeadWeights } from '../head.js';
import { HEAD_SCHEMA_VERSION, type HeadMeta, type TrainingMeta } from '../head-schema.js';
import { fitCox, type CoxTies } from './cox.js';
import { validateFeatures, type FeatureMatrix, type SurvivalLabels } from './data.js';
import { FIT_DEFAULTS } from './defaults.js';
import { assignFolds, splitFold } from './folds.js';
import { predictLinear, type LinearModel } from './linear-model.js';
import { fitLogistic, type LogisticOptions } from './logistic.js';
import { fitMlp, predictMlp, type MlpFit, type MlpOptions } from './mlp.js';
import { fitMultiLabelLogistic, isMultiLabels, type MultiLabels } from './multilabel.js';
import { fitRidge } from './ridge.js';
import { targetsOf, type FitTask, type TargetsOf, type Targets, type TaskLabels } from './targets.js';

/** Fitting methods: multinomial logistic regression, ridge regression, small MLP, Cox PH. */
export type FitKind = 'logistic' | 'ridge' | 'mlp' | 'cox';

/** Options of {@link fitHead}. Fields left unset take their {@link FIT_DEFAULTS} value. */
export interface FitOptions {
  /** Seed for fold shuffling and MLP initialisation/batching. */
  readonly seed?: number;
  /** L2 penalty on standardised coefficients; MLP: weight decay. */
  readonly l2?: number;
  /**
   * Logistic classification / multilabel: `balanced` class weighting. Multilabel
   * balances positives and negatives of each label.
   */
  readonly classWeight?: 'balanced' | 'none';
  /** Number of classes (default max label + 1). */
  readonly numClasses?: number;
  /** Output names (default class_0.., or ['value'] / ['risk']). */
  readonly labelNames?: readonly string[];
  /** Cross-validation folds (0 or 1 disables cross-validation). */
  readonly folds?: number;
  /** Cox ties handling. */
  readonly ties?: CoxTies;
  /** MLP task (default classification). */
  readonly task?: 'classification' | 'regression';
  /** MLP hidden widths. */
  readonly hidden?: readonly number[];
  readonly learningRate?: number;
  readonly batchSize?: number;
  /** MLP epochs at most (default: the iteration cap, {@link FIT_DEFAULTS}.maxIterations). */
  readonly maxEpochs?: number;
  readonly patience?: number;
  /** Iteration cap of L-BFGS (logistic) and Newton (Cox, at most {@link FIT_DEFAULTS}.coxMaxIterations). */
  readonly maxIter?: number;
  /** Features the rows are (default: post-LN CLS per slice, hidden = feature width). */
  readonly requirement?: FeatureRequirement;
  /** Backbone the features came from, recorded for compatibility checks. */
  readonly backbone?: BackboneFingerprint | null;
  readonly name?: string;
  readonly version?: string;
  readonly signal?: AbortSignal;
}

/** Keys of `training.cv.per_fold` entries holding the fold's train / test sample counts. */
export const FOLD_TRAIN = 'n_train';
/** See {@link FOLD_TRAIN}. */
export const FOLD_TEST = 'n_test';

/** Labels accepted by {@link fitHead}. */
export type FitLabels = ArrayLike<number> | SurvivalLabels | MultiLabels;

/** A model trained on some rows: its scores on any rows and its head weights. */
interface Trained {
  predict(rows: readonly number[]): Float64Array;
  readonly weights: Map<string, Weight>;
  readonly mlpSizes?: number[];
}

type TrainFn<T> = (x: FeatureMatrix, idx: readonly number[], t: T, o: FitOptions) => Promise<Trained>;

/** How one fitting method trains, and which labels it takes. */
interface Trainer {
  /** Task of numeric labels (absent: the method takes survival or multilabel labels only). */
  readonly numericTask?: (o: FitOptions) => 'classification' | 'regression';
  /** One training function per task the method fits. */
  readonly train: { readonly [T in FitTask]?: TrainFn<TargetsOf[T]> };
  /** Kind of the stored head (`usesMask`: the features are mask-pooled). */
  readonly headKind: (usesMask: boolean) => HeadMeta['kind'];
}

const f32 = (a: Float64Array, shape: number[]): Weight => ({ shape, data: Float32Array.from(a) });

function linearTrained(m: LinearModel, x: FeatureMatrix, prefix = 'classifier'): Trained {
  return {
    predict: (rows) => predictLinear(m, x, rows),
    weights: new Map([
      [`${prefix}.weight`, f32(m.weight, [m.outputs, m.cols])],
      [`${prefix}.bias`, f32(m.bias, [m.outputs])],
    ]),
  };
}

function mlpTrained(fit: MlpFit, x: FeatureMatrix): Trained {
  const weights = new Map<string, Weight>();
  fit.layers.forEach((l, i) => {
    weights.set(`mlp.${i}.weight`, f32(l.weight, [fit.sizes[i + 1]!, fit.sizes[i]!]));
    weights.set(`mlp.${i}.bias`, f32(l.bias, [fit.sizes[i + 1]!]));
  });
  return { predict: (rows) => predictMlp(fit, x, rows), weights, mlpSizes: fit.sizes };
}

function mlpOptions(o: FitOptions, task: 'classification' | 'regression', outputs: number): MlpOptions {
  const d = FIT_DEFAULTS.mlp;
  return {
    task,
    outputs,
    hidden: o.hidden ?? FIT_DEFAULTS.hidden,
    learningRate: o.learningRate ?? d.learningRate,
    batchSize: o.batchSize ?? d.batchSize,
    maxEpochs: o.maxEpochs ?? FIT_DEFAULTS.maxIterations,
    patience: o.patience ?? d.patience,
    validationFraction: d.validationFraction,
    l2: o.l2 ?? FIT_DEFAULTS.l2.mlp,
    seed: o.seed ?? FIT_DEFAULTS.seed,
    signal: o.signal,
  };
}

function logisticOptions(o: FitOptions): LogisticOptions {
  return {
    l2: o.l2 ?? FIT_DEFAULTS.l2.logistic,
    classWeight: o.classWeight ?? FIT_DEFAULTS.classWeight,
    maxIter: o.maxIter ?? FIT_DEFAULTS.maxIterations,
    signal: o.signal,
  };
}

const linearHeadKind = (usesMask: boolean): HeadMeta['kind'] => (usesMask ? 'mask-linear' : 'cls-linear');

/** Every fitting method; adding one is one entry. */
const TRAINERS: { readonly [K in FitKind]: Trainer } = {
  logistic: {
    numericTask: () => 'classification',
    headKind: linearHeadKind,
    train: {
      classification: async (x, idx, t, o) =>
        linearTrained(await fitLogistic(x, idx, t.y, t.numClasses, logisticOptions(o)), x),
      multilabel: async (x, idx, t, o) =>
        linearTrained(await fitMultiLabelLogistic(x, idx, t.labels, logisticOptions(o)), x),
    },
  },
  ridge: {
    numericTask: () => 'regression',
    headKind: linearHeadKind,
    train: {
      regression: (x, idx, t, o) =>
        Promise.resolve(linearTrained(fitRidge(x, idx, t.y, o.l2 ?? FIT_DEFAULTS.l2.ridge), x)),
    },
  },
  mlp: {
    numericTask: (o) => o.task ?? 'classification',
    headKind: () => 'mlp',
    train: {
      classification: async (x, idx, t, o) =>
        mlpTrained(await fitMlp(x, idx, t.y, mlpOptions(o, 'classification', t.outputs)), x),
      regression: async (x, idx, t, o) =>
        mlpTrained(await fitMlp(x, idx, t.y, mlpOptions(o, 'regression', t.outputs)), x),
    },
  },
  cox: {
    headKind: () => 'cox',
    train: {
      survival: async (x, idx, t, o) => {
        const fit = await fitCox(x, idx, t.time, t.event, {
          ties: o.ties ?? FIT_DEFAULTS.ties,
          l2: o.l2 ?? FIT_DEFAULTS.l2.cox,
          maxIter: Math.min(o.maxIter ?? FIT_DEFAULTS.maxIterations, FIT_DEFAULTS.coxMaxIterations),
          signal: o.signal,
        });
        const trained = linearTrained(fit.model, x, 'cox');
        trained.weights.set('cox.baseline_times', f32(fit.baselineTimes, [fit.baselineTimes.length]));
        trained.weights.set(
          'cox.baseline_cumhaz',
          f32(fit.baselineCumHazard, [fit.baselineCumHazard.length]),
        );
        return trained;
      },
    },
  },
};

const isSurvivalLabels = (labels: FitLabels): labels is SurvivalLabels =>
  typeof labels === 'object' && 'time' in labels && 'event' in labels;

/** The task `kind` fits on these labels; INVALID_ARGUMENT when it cannot fit them. */
function taskLabelsOf(kind: FitKind, labels: FitLabels, o: FitOptions): TaskLabels {
  const trainer = TRAINERS[kind];
  const fitting = (task: FitTask): string =>
    Object.entries(TRAINERS)
      .filter(([, t]) => t.train[task])
      .map(([k]) => k)
      .join('/');
  if (isMultiLabels(labels)) {
    if (!trainer.train.multilabel)
      throw invalid(`multilabel targets are fitted with ${fitting('multilabel')} heads only (got ${kind})`);
    return { task: 'multilabel', labels };
  }
  if (isSurvivalLabels(labels)) {
    if (!trainer.train.survival) throw invalid(`${kind} fitting needs numeric labels, not survival labels`);
    return { task: 'survival', labels };
  }
  if (!trainer.numericTask) throw invalid(`${kind} fitting needs survival labels { time, event }`);
  if (!('length' in labels)) throw invalid(`${kind} fitting needs one numeric label per row`);
  return { task: trainer.numericTask(o), labels };
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
  const folds = options.folds ?? FIT_DEFAULTS.folds;
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
  const targets = targetsOf(taskLabelsOf(kind, labels, options), features.rows, folds, options.numClasses);
  // The table pairs each task with a function of that task's targets; TypeScript cannot follow
  // the pairing through the lookup.
  const trainFn = TRAINERS[kind].train[targets.task] as TrainFn<Targets> | undefined;
  if (!trainFn) throw invalid(`${kind} heads cannot be fitted for ${targets.task}`);
  const train = (idx: readonly number[]): Promise<Trained> => trainFn(features, idx, targets, options);
  const { task, extra } = targets;
  const seed = options.seed ?? FIT_DEFAULTS.seed;
  let cv: TrainingMeta['cv'] = null;
  if (folds >= 2) {
    const assignment = assignFolds(features.rows, folds, seed, targets.strata);
    const perFold: Record<string, number>[] = [];
    const sizes: Record<string, number>[] = [];
    for (let f = 0; f < folds; f++) {
      throwIfAborted(options.signal, 'cross-validation');
      const split = splitFold(assignment, f);
      const m = await train(split.train);
      perFold.push(targets.metrics(split.test, m.predict(split.test)));
      sizes.push({ [FOLD_TRAIN]: split.train.length, [FOLD_TEST]: split.test.length });
    }
    cv = {
      folds,
      metrics: meanMetrics(perFold),
      per_fold: perFold.map((f, i) => ({ ...f, ...sizes[i] })),
    };
  }
  const all = Array.from({ length: features.rows }, (_, i) => i);
  const final = await train(all);
  const outputs = targets.outputs;
  const labelNames = options.labelNames
    ? [...options.labelNames]
    : task === 'classification' || task === 'multilabel'
      ? Array.from({ length: outputs }, (_, i) => `${task === 'multilabel' ? 'label' : 'class'}_${i}`)
      : [task === 'survival' ? 'risk' : 'value'];
  if (labelNames.length !== outputs)
    throw invalid(`labelNames has ${labelNames.length} names for ${outputs} outputs`);
  const usesMask = req.inputs.some((i) => i.kind === 'mask_pooled');
  const headKind = TRAINERS[kind].headKind(usesMask);
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
