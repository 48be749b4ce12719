import { env, serviceSchema, z } from '@curia/kit';

const { positiveInt } = env;

/** Environment of the embed service: the kit's base settings plus `CURIA_EMBED_*`. */
export const embedEnvSchema = serviceSchema({
  /** Comma list of bundle directories; the first is the default model. Empty = the cached demo bundle. */
  CURIA_EMBED_MODELS: env.commaList.default([]),
  /** ONNX Runtime execution providers in preference order (`cuda,cpu` on GPU nodes). */
  CURIA_EMBED_EXECUTION_PROVIDERS: env.executionProviders,
  /** ORT intra-op threads per session (default: the CPU budget, cores capped by a cgroup CPU limit). */
  CURIA_EMBED_INTRA_OP_THREADS: positiveInt.optional(),
  /** ORT inter-op threads per session (default 1). */
  CURIA_EMBED_INTER_OP_THREADS: positiveInt.optional(),
  /**
   * Run each model's ORT session on its own worker thread (default true). onnxruntime-node's
   * `run` blocks the calling thread for the whole batch; on the event loop that stalls request
   * intake (batches then fill only with what arrived between runs) and result writes.
   */
  CURIA_EMBED_ENGINE_THREAD: env.bool.default(true),
  /** Largest inference batch, slices. */
  CURIA_EMBED_MAX_BATCH: positiveInt.max(64).default(8),
  /** Longest a slice waits for batch companions, ms. */
  CURIA_EMBED_MAX_QUEUE_DELAY_MS: z.coerce.number().min(0).max(10_000).default(5),
  /** Slices allowed to wait across all streams; beyond it slices are shed with RESOURCE_EXHAUSTED. */
  CURIA_EMBED_MAX_QUEUE_SLICES: positiveInt.default(64),
  /** Slices of one stream being queued or computed at once (the stream's pipeline depth). */
  CURIA_EMBED_MAX_INFLIGHT_PER_STREAM: positiveInt.default(16),
  /** Slices accepted per Embed stream; more fail with RESOURCE_EXHAUSTED. */
  CURIA_EMBED_MAX_SLICES_PER_STREAM: positiveInt.default(100_000),
  /**
   * Largest message the server accepts, bytes (the kit's default is 64 MiB): a slice is at most 512² F32
   * pixels plus a 512² mask (~1.3 MiB); the largest start carries 16 projected_tokens bases of D × 64 F32
   * (6 MiB at D = 1536). Larger messages fail with RESOURCE_EXHAUSTED before they are decoded.
   */
  CURIA_MAX_RECEIVE_MESSAGE_BYTES: positiveInt.default(8 * 1024 * 1024),
});

/** Parsed embed service settings. */
export type EmbedEnv = z.infer<typeof embedEnvSchema>;
