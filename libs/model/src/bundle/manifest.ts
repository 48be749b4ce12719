import { z } from 'zod';

/** Current bundle.json schema version. */
export const BUNDLE_SCHEMA_VERSION = 1;

/** Version of this builder, recorded in every bundle's provenance. */
export const BUILDER_VERSION = '0.1.0';

/** Bundle files. */
export const MODEL_FILE = 'model.onnx';
/** Manifest file name. */
export const MANIFEST_FILE = 'bundle.json';

const positiveInt = z.number().int().positive();

/** zod schema of `bundle.json`. */
export const bundleManifestSchema = z.object({
  schema_version: z.literal(BUNDLE_SCHEMA_VERSION),
  name: z.string().min(1),
  version: z.string().min(1),
  architecture: z.object({
    hidden_size: positiveInt,
    num_layers: positiveInt,
    num_heads: positiveInt,
    patch_size: positiveInt,
    image_size: positiveInt,
    num_channels: positiveInt,
    num_register_tokens: z.number().int().nonnegative(),
    ffn: z.enum(['mlp', 'swiglu']),
    layer_norm_eps: z.number().positive(),
    mlp_ratio: z.number().positive(),
    qkv_bias: z.boolean(),
  }),
  preprocess: z.object({
    image_size: positiveInt,
    clip_below_air: z.boolean(),
    normalize: z.literal('zscore_unbiased'),
    resize: z.literal('bicubic_antialias'),
  }),
  outputs: z
    .array(
      z.object({
        name: z.enum(['last_hidden_state', 'pooler_output', 'last_block_prenorm']),
        shape: z.array(z.union([z.string(), positiveInt])),
      }),
    )
    .min(1),
  dtype: z.enum(['f32', 'f16']),
  io_dtype: z.enum(['f32', 'f16']),
  /** Self-attention ops in the graph: standard ai.onnx ops or ORT's contrib MultiHeadAttention. */
  attention: z.enum(['standard', 'mha']),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  model_bytes: z.number().int().positive(),
  provenance: z.object({
    source: z.enum(['hf', 'random']),
    hf_config: z.record(z.string(), z.unknown()).optional(),
    preset: z.string().optional(),
    seed: z.number().int().optional(),
    created_at: z.string(),
    builder_version: z.string(),
  }),
  demo_weights: z.boolean(),
});

/** A parsed, validated `bundle.json`. */
export type BundleManifest = z.infer<typeof bundleManifestSchema>;
