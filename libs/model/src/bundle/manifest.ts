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
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

/** How an INT8 bundle was quantized, what it derives from and how faithful it measured at build. */
export const quantizationSchema = z.object({
  scheme: z.literal('int8'),
  /** Every linear layer of the ViT (attention q/k/v/output, MLP fc1/fc2 or SwiGLU in/out). */
  layers: z.literal('vit_linear'),
  weights: z.literal('symmetric_per_output_channel'),
  /** Activations quantized at run time, per tensor (uint8 with zero point). */
  activations: z.literal('dynamic_per_tensor'),
  /** Graph ops of a quantized linear layer. */
  ops: z.enum(['dynamic-quantize-matmul', 'matmul-integer']),
  /** sha256 of the F32 model.onnx (same weights, name, version and attention) this derives from. */
  source_sha256: sha256Hex,
  fidelity: z.object({
    /** shared_ct = the shared real CT slices; synthetic = phantom-like slices (no shared data at build). */
    calibration: z.enum(['shared_ct', 'synthetic']),
    source: z.string(),
    slices: positiveInt,
    cls_cosine_min: z.number(),
    patch_cosine_mean: z.number(),
    max_abs_diff: z.number(),
    thresholds: z.object({ cls_cosine_min: z.number(), patch_cosine_mean: z.number() }),
    /**
     * INT8-relevant CPU flags of the build host (ORT picks its INT8 kernel by them: without VNNI
     * the u8×s8 products go through 16-bit sums that can saturate, so a host without VNNI may
     * measure differently); null when unknown.
     */
    host_int8_features: z.array(z.string()).readonly().nullable().optional(),
  }),
});

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
  sha256: sha256Hex,
  /**
   * Identity of the embedding space the bundle's features live in: the sha256 of the F32 model
   * it is, or derives from. Heads fitted on one bundle run on any bundle of the same feature space.
   * Absent in bundles built before it existed: then the bundle's own sha256.
   */
  feature_space: sha256Hex.optional(),
  /** Present on quantized bundles. */
  quantization: quantizationSchema.optional(),
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

/** The feature space of a bundle (see `feature_space`; older manifests: their own sha256). */
export function featureSpaceOf(m: Pick<BundleManifest, 'feature_space' | 'sha256'>): string {
  return m.feature_space ?? m.sha256;
}
