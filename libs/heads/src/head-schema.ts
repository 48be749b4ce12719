import { z } from 'zod';

/** Current head.json schema version. */
export const HEAD_SCHEMA_VERSION = 1;

const tokenNorm = z.enum(['post', 'pre']);

const featureSpec = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('cls'), norm: tokenNorm }),
  z.object({ kind: z.literal('mask_pooled'), norm: tokenNorm, weighting: z.enum(['mask', 'binary']) }),
  /** k = 0: global mean over the patch tokens (one token per slice). */
  z.object({ kind: z.literal('avg_pooled_tokens'), k: z.int().nonnegative(), norm: tokenNorm }),
]);

const requirement = z.object({
  inputs: z.array(featureSpec).min(1).readonly(),
  slices: z.union([z.enum(['each', 'all']), z.object({ central: z.int().positive() })]),
  mask: z.boolean(),
  hidden: z.int().positive(),
});

const fingerprint = z.object({
  hidden_size: z.int().positive(),
  num_layers: z.int().positive(),
  patch_size: z.int().positive(),
  num_channels: z.int().positive(),
  num_patches: z.int().positive(),
  num_register_tokens: z.int().nonnegative(),
  ffn: z.enum(['mlp', 'swiglu']),
  tensor_count: z.int().positive(),
  header_sha256: z.string().regex(/^[0-9a-f]{64}$/),
  sample_sha256: z.string().regex(/^[0-9a-f]{64}$/),
  sample_tensors: z.array(z.string()).readonly(),
});

const architecture = z.object({
  /** Classifier / regressor input width. */
  input_dim: z.int().positive(),
  outputs: z.int().positive(),
  attention: z
    .object({
      num_heads: z.int().positive(),
      num_queries: z.int().positive(),
      blocks: z
        .array(z.enum(['self', 'cross']))
        .min(1)
        .readonly(),
    })
    .optional(),
  /** Add Curia's sinusoidal slice-position embedding to every slice token (3D heads). */
  slice_position_embedding: z.boolean().optional(),
  /** MLP layer widths [in, hidden..., out]; ReLU between layers. */
  mlp_sizes: z.array(z.int().positive()).min(2).optional(),
});

const training = z.object({
  method: z.enum(['logistic', 'ridge', 'mlp', 'cox']),
  n_samples: z.int().nonnegative(),
  n_features: z.int().nonnegative(),
  /** Classification: samples per class; multilabel: samples where each label is present. */
  class_counts: z.array(z.int().nonnegative()).optional(),
  n_events: z.int().nonnegative().optional(),
  cv: z
    .object({
      folds: z.int().positive(),
      metrics: z.record(z.string(), z.number()),
      per_fold: z.array(z.record(z.string(), z.number())),
    })
    .nullable(),
  seed: z.int(),
  options: z.record(z.string(), z.unknown()),
  created_at: z.string(),
});

/** zod schema of head.json. */
export const headMetaSchema = z.object({
  schema_version: z.literal(HEAD_SCHEMA_VERSION),
  name: z.string().min(1),
  version: z.string().min(1),
  kind: z.enum(['cls-linear', 'mask-linear', 'attention-3d', 'volume-mean-linear', 'mlp', 'cox']),
  /** `multilabel`: independent sigmoid outputs, one per label. */
  task: z.enum(['classification', 'multilabel', 'regression', 'survival']),
  labels: z.array(z.string()),
  requirements: requirement,
  architecture,
  backbone: fingerprint.nullable(),
  provenance: z.object({
    source: z.enum(['curia-import', 'fit']),
    imported_from: z.string().optional(),
    curia_config: z.record(z.string(), z.unknown()).optional(),
    created_at: z.string(),
  }),
  training: training.optional(),
});

/** Parsed head.json. */
export type HeadMeta = z.infer<typeof headMetaSchema>;
/** Head kinds this engine runs. */
export type HeadKind = HeadMeta['kind'];
/** Prediction task of a head. */
export type HeadTask = HeadMeta['task'];
/** Training metadata recorded by `fitHead`. */
export type TrainingMeta = NonNullable<HeadMeta['training']>;
