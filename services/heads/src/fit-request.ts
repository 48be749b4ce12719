import { CuriaError } from '@curia/errors';
import {
  FIT_DEFAULTS,
  type FeatureMatrix,
  type FeatureRequirement,
  type FeatureSpec,
  type FitKind,
  type FitOptions,
  type MultiLabels,
  type SurvivalLabels,
} from '@curia/heads';
import { common, heads } from '@curia/proto';

import { decodeFloatTensor, MAX_DESCRIPTION_BYTES } from './codec.js';
import { HEAD_NAME_RE } from './store.js';

const invalid = (msg: string): CuriaError => new CuriaError('INVALID_ARGUMENT', msg);

/**
 * Caps on Fit's free-form fields, checked on `start` (or on the first sample, for the feature
 * width) before anything is allocated for them; INVALID_ARGUMENT names the field and the cap.
 * `heads.proto` documents them (FitStart, FitOptions). A stored head is listed by every ListHeads
 * and GetInfo, so its description stays a few KiB: two 40 MB descriptions once made both fail.
 */
export const FIT_CAPS = {
  /** `start.description`, UTF-8 bytes. */
  descriptionBytes: MAX_DESCRIPTION_BYTES,
  /** `start.unit`, UTF-8 bytes. */
  unitBytes: 64,
  /** `start.dataset`, UTF-8 bytes. */
  datasetBytes: 1024,
  /** `start.model`, UTF-8 bytes. */
  modelBytes: 256,
  /** Entries of `start.label_names`. */
  labelNames: 1000,
  /** Each label name, UTF-8 bytes. */
  labelNameBytes: 256,
  /** `start.options.max_iterations`. */
  maxIterations: 100_000,
  /** Entries of `start.options.hidden_layer_sizes`. */
  hiddenLayers: 8,
  /** Values per sample (the feature width D). */
  features: 16_384,
  /** MLP weights (D × first width + … + last width × outputs). */
  mlpWeights: 1 << 24,
} as const;

/** A field's UTF-8 size against its cap. */
function capBytes(value: string, cap: number, field: string): void {
  // A string of n UTF-16 units is at most 3n UTF-8 bytes: skip the count when it cannot exceed.
  if (value.length * 3 <= cap) return;
  const n = Buffer.byteLength(value);
  if (n > cap) throw invalid(`${field} is ${n} bytes; the cap is ${cap} bytes`);
}

/** Limits applied while reading a Fit stream. */
export interface FitLimits {
  readonly maxSamples: number;
  readonly maxBytes: number;
  /**
   * Takes bytes from the process's memory budget before the feature matrix grows into them
   * (waits or throws RESOURCE_EXHAUSTED); the returned release gives them back. None: no budget.
   */
  readonly reserve?: (bytes: number, what: string) => Promise<() => void>;
}

/** A fully received, validated Fit request, ready for `fitHead`. */
export interface FitPlan {
  readonly start: heads.FitStart;
  readonly kind: FitKind;
  readonly spec: FeatureSpec;
  readonly features: FeatureMatrix;
  readonly labels: Int32Array | Float64Array | SurvivalLabels | MultiLabels;
  readonly options: FitOptions;
  /** The options as they will be reported (defaults resolved). */
  readonly resolved: heads.FitOptions;
  /** Gives back the memory budget the samples took (idempotent); call when the Fit ends. */
  readonly release?: () => void;
}

/** Engine task of a Fit. */
type FitTask = 'classification' | 'multilabel' | 'regression' | 'survival';

function kindOf(start: heads.FitStart): { kind: FitKind; task: FitTask } {
  const K = common.HeadKind;
  const T = common.HeadTask;
  if (start.task === T.MULTILABEL && start.kind === K.MLP_CLASSIFIER) {
    throw new CuriaError(
      'UNIMPLEMENTED',
      'start.kind MLP_CLASSIFIER with start.task MULTILABEL is not supported; use LOGISTIC (one sigmoid per label)',
    );
  }
  const pairs: [common.HeadKind, common.HeadTask, FitKind, FitTask][] = [
    [K.LOGISTIC, T.CLASSIFICATION, 'logistic', 'classification'],
    [K.LOGISTIC, T.MULTILABEL, 'logistic', 'multilabel'],
    [K.MLP_CLASSIFIER, T.CLASSIFICATION, 'mlp', 'classification'],
    [K.COX, T.SURVIVAL, 'cox', 'survival'],
    [K.RIDGE, T.REGRESSION, 'ridge', 'regression'],
    [K.MLP_REGRESSOR, T.REGRESSION, 'mlp', 'regression'],
  ];
  const hit = pairs.find(([k, t]) => k === start.kind && t === start.task);
  if (!hit) {
    throw invalid(
      `start.kind ${common.headKindToJSON(start.kind)} cannot be trained for start.task ${common.headTaskToJSON(start.task)}` +
        ' (LOGISTIC: CLASSIFICATION or MULTILABEL; MLP_CLASSIFIER: CLASSIFICATION; COX: SURVIVAL; RIDGE/MLP_REGRESSOR: REGRESSION)',
    );
  }
  return { kind: hit[2], task: hit[3] };
}

function specOf(f: common.FeatureRequest | undefined): FeatureSpec {
  switch (f?.kind?.$case) {
    case 'cls':
      return { kind: 'cls', norm: f.kind.value.prenorm ? 'pre' : 'post' };
    case 'maskPooled':
      return { kind: 'mask_pooled', norm: f.kind.value.prenorm ? 'pre' : 'post', weighting: 'mask' };
    case 'avgPooledTokens':
      if (f.kind.value.kernelSize !== 0) {
        throw invalid(
          `start.feature avg_pooled_tokens.kernel_size must be 0 (global mean, one vector per slice) for Fit; got ${f.kind.value.kernelSize}`,
        );
      }
      return { kind: 'avg_pooled_tokens', k: 0, norm: f.kind.value.prenorm ? 'pre' : 'post' };
    case undefined:
      throw invalid('start.feature is required (cls, mask_pooled or avg_pooled_tokens with kernel_size 0)');
    default:
      throw invalid(
        `start.feature ${f?.kind?.$case ?? 'unset'} is not trainable here; Fit trains slice-level heads on cls, mask_pooled or avg_pooled_tokens (kernel_size 0) features`,
      );
  }
}

function optionsOf(
  start: heads.FitStart,
  kind: FitKind,
  task: string,
): { options: FitOptions; resolved: heads.FitOptions } {
  const o = start.options;
  const D = FIT_DEFAULTS;
  const folds = o?.folds || D.folds;
  if (folds < 2 || folds > 20) throw invalid(`start.options.folds must be in 2..20 (got ${folds})`);
  const l2 = o?.l2 ?? D.l2[kind];
  if (!Number.isFinite(l2) || l2 < 0)
    throw invalid(`start.options.l2 must be a finite number >= 0 (got ${l2})`);
  const seed = o?.seed ?? D.seed;
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff)
    throw invalid(`start.options.seed must be an integer in [0, 2^32) (got ${seed})`);
  const layers = o?.hiddenLayerSizes.length ?? 0;
  if (layers > FIT_CAPS.hiddenLayers)
    throw invalid(
      `start.options.hidden_layer_sizes has ${layers} layers; the cap is ${FIT_CAPS.hiddenLayers}`,
    );
  const hidden = o?.hiddenLayerSizes.length ? [...o.hiddenLayerSizes] : [...D.hidden];
  if (hidden.some((h) => h < 1 || h > 4096))
    throw invalid('start.options.hidden_layer_sizes entries must be in 1..4096');
  const maxIterations = o?.maxIterations || D.maxIterations;
  if (maxIterations > FIT_CAPS.maxIterations)
    throw invalid(`start.options.max_iterations is ${maxIterations}; the cap is ${FIT_CAPS.maxIterations}`);
  const W = heads.ClassWeight;
  const classWeight =
    o?.classWeight === W.BALANCED ? 'balanced' : o?.classWeight === W.NONE ? 'none' : D.classWeight;
  const classifier = task === 'classification' || task === 'multilabel';
  const T = heads.TiesMethod;
  const ties = o?.ties === T.BRESLOW ? 'breslow' : o?.ties === T.EFRON ? 'efron' : D.ties;
  if (start.labelNames.length > 0 && !classifier)
    throw invalid('start.label_names is only for classification and multilabel heads');
  if (task === 'multilabel' && start.labelNames.length === 0)
    throw invalid(
      'start.label_names is required for MULTILABEL: it defines the labels (positive_indices index it)',
    );
  const options: FitOptions = {
    folds,
    l2,
    seed,
    ...(classifier ? { classWeight } : {}),
    ...(kind === 'cox' ? { ties } : {}),
    ...(kind === 'mlp'
      ? { hidden, maxEpochs: maxIterations, task: task === 'regression' ? 'regression' : 'classification' }
      : { maxIter: maxIterations }),
  };
  const resolved: heads.FitOptions = {
    l2,
    classWeight: classifier
      ? classWeight === 'balanced'
        ? heads.ClassWeight.BALANCED
        : heads.ClassWeight.NONE
      : heads.ClassWeight.UNSPECIFIED,
    ties:
      kind === 'cox'
        ? ties === 'breslow'
          ? heads.TiesMethod.BRESLOW
          : heads.TiesMethod.EFRON
        : heads.TiesMethod.UNSPECIFIED,
    folds,
    seed,
    hiddenLayerSizes: kind === 'mlp' ? hidden : [],
    maxIterations,
  };
  return { options, resolved };
}

/** Validates FitStart: name, kind/task pair, feature, level, options, idempotency key. */
export function validateStart(start: heads.FitStart): Omit<FitPlan, 'features' | 'labels' | 'start'> {
  if (!HEAD_NAME_RE.test(start.head))
    throw invalid(
      `start.head must be 1..64 characters of [a-z0-9-] starting with [a-z0-9] (got '${start.head.slice(0, 70)}')`,
    );
  if (Buffer.byteLength(start.idempotencyKey) > 128)
    throw invalid('start.idempotency_key is longer than 128 bytes');
  capBytes(start.description, FIT_CAPS.descriptionBytes, 'start.description');
  capBytes(start.unit, FIT_CAPS.unitBytes, 'start.unit');
  capBytes(start.dataset, FIT_CAPS.datasetBytes, 'start.dataset');
  capBytes(start.model, FIT_CAPS.modelBytes, 'start.model');
  if (start.labelNames.length > FIT_CAPS.labelNames)
    throw invalid(
      `start.label_names has ${start.labelNames.length} entries; the cap is ${FIT_CAPS.labelNames}`,
    );
  start.labelNames.forEach((n, i) => capBytes(n, FIT_CAPS.labelNameBytes, `start.label_names[${i}]`));
  const { kind, task } = kindOf(start);
  const spec = specOf(start.feature);
  if (start.requirements?.level === common.HeadInputLevel.VOLUME)
    throw invalid('start.requirements.level VOLUME is not trainable: Fit trains slice-level heads');
  if (start.requirements && start.requirements.features.length > 0)
    throw invalid('start.requirements.features must be empty; the server sets it to [start.feature]');
  return { kind, spec, ...optionsOf(start, kind, task) };
}

/** Weights of an MLP from `d` features through `hidden` to `outputs` (at least 1). */
function mlpWeights(d: number, hidden: readonly number[], outputs: number): number {
  const widths = [d, ...hidden, Math.max(1, outputs)];
  let weights = 0;
  for (let i = 0; i + 1 < widths.length; i++) weights += widths[i]! * widths[i + 1]!;
  return weights;
}

/**
 * Bytes the engine holds while fitting `plan` beyond its feature matrix (an estimate, taken from
 * the memory budget before `fitHead`): a standardised float64 copy of the samples (rows × D × 8);
 * Cox: the Hessian and two second-moment matrices (3 × D² × 8); ridge: the normal matrix
 * (D² × 8); MLP: weights, gradients, the two Adam moments and the best weights (5 × weights × 8).
 */
export function fitWorkingBytes(plan: FitPlan): number {
  const { rows, cols: d } = plan.features;
  const base = rows * d * 8;
  switch (plan.kind) {
    case 'cox':
      return base + 3 * d * d * 8;
    case 'ridge':
      return base + d * d * 8;
    case 'mlp':
      return base + 5 * 8 * mlpWeights(d, plan.resolved.hiddenLayerSizes, plan.start.labelNames.length);
    default:
      return base;
  }
}

/** MLP weights of a Fit with feature width `d` (the last layer: one output per class, at most labels). */
function checkMlpWeights(
  base: Omit<FitPlan, 'features' | 'labels' | 'start'>,
  d: number,
  outputs: number,
): void {
  if (base.kind !== 'mlp') return;
  const weights = mlpWeights(d, base.resolved.hiddenLayerSizes, outputs);
  if (weights > FIT_CAPS.mlpWeights) {
    throw invalid(
      `start.options.hidden_layer_sizes [${base.resolved.hiddenLayerSizes.join(', ')}] on ${d} features make ${weights} MLP weights; the cap is ${FIT_CAPS.mlpWeights}`,
    );
  }
}

/** The [rows, numLabels] 0/1 indicator matrix from per-sample positive indices. */
function multiLabelsOf(
  positives: readonly number[],
  starts: readonly number[],
  rows: number,
  numLabels: number,
): MultiLabels {
  const indicators = new Uint8Array(rows * numLabels);
  for (let r = 0; r < rows; r++) {
    const end = r + 1 < rows ? starts[r + 1]! : positives.length;
    for (let j = starts[r]!; j < end; j++) indicators[r * numLabels + positives[j]!] = 1;
  }
  return { indicators, numLabels };
}

/**
 * Reads the Fit request stream: one `start`, then `samples` batches. Enforces the sample and byte
 * caps (RESOURCE_EXHAUSTED) while reading, checks every sample's shape, dtype, finiteness and
 * label kind (INVALID_ARGUMENT naming samples[i]), and stops when `signal` fires.
 */
export async function readFitStream(
  stream: AsyncIterable<heads.FitRequest>,
  limits: FitLimits,
  signal: AbortSignal,
): Promise<FitPlan> {
  let start: heads.FitStart | undefined;
  let base: Omit<FitPlan, 'features' | 'labels' | 'start'> | undefined;
  let d = 0;
  let rows = 0;
  let bytes = 0;
  let data = new Float32Array(0);
  const classes: number[] = [];
  const values: number[] = [];
  const times: number[] = [];
  const events: number[] = [];
  // Multilabel: positive label indices of every sample, flattened, with per-sample offsets.
  const positives: number[] = [];
  const positiveStart: number[] = [];
  // The budget share of the feature matrix, held until the Fit ends (`FitPlan.release`).
  let held: (() => void) | undefined;
  try {
    return await readInto();
  } catch (e) {
    held?.();
    throw e;
  }

  async function readInto(): Promise<FitPlan> {
    for await (const msg of stream) {
      if (signal.aborted) throw new CuriaError('CANCELLED', 'Fit was cancelled while receiving samples');
      if (msg.msg?.$case === 'start') {
        if (start) throw invalid('start was sent twice; it must be the first message only');
        start = msg.msg.value;
        base = validateStart(start);
        continue;
      }
      if (msg.msg?.$case !== 'samples') throw invalid('each Fit message must set start or samples');
      if (!start || !base) throw invalid('the first Fit message must be start');
      for (const sample of msg.msg.value.samples) {
        const i = rows;
        if (i + 1 > limits.maxSamples) {
          throw new CuriaError(
            'RESOURCE_EXHAUSTED',
            `Fit sends more than ${limits.maxSamples} samples (CURIA_HEADS_MAX_FIT_SAMPLES)`,
          );
        }
        bytes += sample.features?.data.byteLength ?? 0;
        if (bytes > limits.maxBytes) {
          throw new CuriaError(
            'RESOURCE_EXHAUSTED',
            `Fit features exceed ${limits.maxBytes} bytes in total (CURIA_HEADS_MAX_FIT_BYTES)`,
          );
        }
        const t = decodeFloatTensor(sample.features, `samples[${i}].features`);
        if (t.shape.length !== 1 || t.shape[0]! < 1) {
          throw invalid(`samples[${i}].features has shape [${t.shape.join(', ')}]; expected (D)`);
        }
        if (i === 0) {
          d = t.shape[0]!;
          if (d > FIT_CAPS.features)
            throw invalid(`samples[0].features has ${d} values; the cap is ${FIT_CAPS.features}`);
          checkMlpWeights(base, d, start.labelNames.length);
        } else if (t.shape[0] !== d) {
          throw invalid(`samples[${i}].features has ${t.shape[0]} values; samples[0] had ${d}`);
        }
        if ((rows + 1) * d > data.length) {
          const length = Math.min(Math.max(64 * d, data.length * 2), limits.maxSamples * d);
          const release = await limits.reserve?.(length * 4, `Fit features (${length / d} samples × ${d})`);
          const grown = new Float32Array(length);
          grown.set(data);
          data = grown;
          held?.();
          held = release;
        }
        data.set(t.values, rows * d);
        const label = sample.label;
        switch (start.task) {
          case common.HeadTask.CLASSIFICATION: {
            if (label?.$case !== 'classIndex') throw invalid(`samples[${i}].label must be class_index`);
            const names = start.labelNames.length;
            if (names > 0 && label.value >= names) {
              throw invalid(`samples[${i}].class_index ${label.value} is >= the ${names} label_names`);
            }
            classes.push(label.value);
            break;
          }
          case common.HeadTask.MULTILABEL: {
            if (label?.$case !== 'multilabel') throw invalid(`samples[${i}].label must be multilabel`);
            const names = start.labelNames.length;
            const seen = new Set<number>();
            positiveStart.push(positives.length);
            for (const p of label.value.positiveIndices) {
              if (p >= names)
                throw invalid(
                  `samples[${i}].multilabel.positive_indices has ${p}, >= the ${names} label_names`,
                );
              if (seen.has(p)) throw invalid(`samples[${i}].multilabel.positive_indices repeats ${p}`);
              seen.add(p);
              positives.push(p);
            }
            break;
          }
          case common.HeadTask.SURVIVAL:
            if (label?.$case !== 'survival') throw invalid(`samples[${i}].label must be survival`);
            if (!Number.isFinite(label.value.time) || label.value.time < 0)
              throw invalid(`samples[${i}].survival.time must be finite and >= 0`);
            times.push(label.value.time);
            events.push(label.value.event ? 1 : 0);
            break;
          default:
            if (label?.$case !== 'value') throw invalid(`samples[${i}].label must be value`);
            if (!Number.isFinite(label.value)) throw invalid(`samples[${i}].value must be finite`);
            values.push(label.value);
        }
        rows++;
      }
    }
    if (!start || !base) throw invalid('the Fit stream is empty; send start then samples');
    if (rows === 0) throw invalid('the Fit stream has no samples');
    const features: FeatureMatrix = { data: data.subarray(0, rows * d), rows, cols: d };
    const labels =
      start.task === common.HeadTask.CLASSIFICATION
        ? Int32Array.from(classes)
        : start.task === common.HeadTask.MULTILABEL
          ? multiLabelsOf(positives, positiveStart, rows, start.labelNames.length)
          : start.task === common.HeadTask.SURVIVAL
            ? { time: Float64Array.from(times), event: Uint8Array.from(events) }
            : Float64Array.from(values);
    const numClasses = start.labelNames.length || undefined;
    // The head consumes exactly the feature it was trained on, slice by slice.
    const requirement: FeatureRequirement = {
      inputs: [base.spec],
      slices: 'each',
      mask: base.spec.kind === 'mask_pooled' || start.requirements?.requiresMask === true,
      hidden: d,
    };
    const options: FitOptions = {
      ...base.options,
      requirement,
      ...(start.task === common.HeadTask.CLASSIFICATION && numClasses
        ? { numClasses, labelNames: start.labelNames }
        : {}),
      ...(start.task === common.HeadTask.MULTILABEL ? { labelNames: start.labelNames } : {}),
    };
    return { ...base, start, features, labels, options, release: () => held?.() };
  }
}
