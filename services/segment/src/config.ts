import { join } from 'node:path';

import { env, localTarget, serviceSchema, z } from '@curia/kit';
import { defaultCacheRoot } from '@curia/model';

const { positiveInt, nonNegativeInt } = env;

/** Environment of the segment service: the kit's base settings, its stage targets and `CURIA_SEGMENT_*`. */
export const segmentEnvSchema = serviceSchema({
  /** PreprocessService target: `host:port` (DNS, all records, round-robin) or a comma list of `ip:port`. */
  CURIA_PREPROCESS_TARGET: z.string().min(1).default(localTarget('preprocess')),
  /** EmbedService target (same forms). */
  CURIA_EMBED_TARGET: z.string().min(1).default(localTarget('embed')),
  /** Segmentation head store; layout `<name>/<version>/{segment-head.json,weights.safetensors}`. */
  CURIA_SEGMENT_HEADS_DIR: z.string().min(1).default(join(defaultCacheRoot(), 'segment-heads')),
  /**
   * The shared head registry (kind `segment-heads`): a PostgreSQL URL every replica reads and writes;
   * it may be the Heads service's database. Empty (the default): the directory CURIA_SEGMENT_HEADS_DIR,
   * no database. The password is never logged; the value is not checked here because a
   * configuration error would print it.
   */
  CURIA_SEGMENT_REGISTRY_DSN: z.string().default(''),
  /** Shared registry quota: most versions one head name may hold (RESOURCE_EXHAUSTED above); 0 = no limit. */
  CURIA_SEGMENT_REGISTRY_MAX_VERSIONS_PER_NAME: nonNegativeInt.default(100),
  /** Shared registry quota: most versions of all segmentation heads together; 0 = no limit. */
  CURIA_SEGMENT_REGISTRY_MAX_VERSIONS: nonNegativeInt.default(2000),
  /** Shared registry quota: most stored bytes of all segmentation heads (each replica holds them all in memory); 0 = no limit. */
  CURIA_SEGMENT_REGISTRY_MAX_BYTES: nonNegativeInt.default(256 * 1024 * 1024),
  /**
   * Bytes of patch tokens the token cache may hold (LRU beyond): a second Segment of the same study
   * (e.g. the next click) skips Embed. 0 disables it.
   */
  CURIA_SEGMENT_CACHE_MAX_BYTES: nonNegativeInt.default(512 * 1024 * 1024),
  /** Segment/Fit calls this replica runs at once; more are shed with RESOURCE_EXHAUSTED. */
  CURIA_SEGMENT_MAX_CONCURRENT: positiveInt.default(4),
  /** Retry hint sent with RESOURCE_EXHAUSTED when the replica sheds a call, ms. */
  CURIA_SEGMENT_RETRY_AFTER_MS: positiveInt.default(1_000),
  /** Largest streamed upload per study, bytes. */
  CURIA_SEGMENT_MAX_UPLOAD_BYTES: positiveInt.default(2 * 1024 ** 3),
  /** Canonical slices a prompt (click) segmentation may hold tokens for (RESOURCE_EXHAUSTED above). */
  CURIA_SEGMENT_MAX_PROMPT_SLICES: positiveInt.default(1024),
  /** Labelled slices one Fit may use over all its studies (RESOURCE_EXHAUSTED above). */
  CURIA_SEGMENT_MAX_FIT_SLICES: positiveInt.default(256),
  /** Slices sent to Embed and not yet answered, per study. */
  CURIA_SEGMENT_EMBED_WINDOW: positiveInt.max(64).default(16),
  /** Attempts per stage call on UNAVAILABLE (a dead replica), including the first. */
  CURIA_SEGMENT_STAGE_ATTEMPTS: positiveInt.max(10).default(3),
  /** Deadline of a call that sets none, ms. */
  CURIA_SEGMENT_DEFAULT_DEADLINE_MS: positiveInt.default(600_000),
  /** ONNX Runtime providers for the heads, in preference order (`cuda,cpu` on GPU nodes). */
  CURIA_SEGMENT_EXECUTION_PROVIDERS: env.executionProviders,
  /**
   * Largest message the server accepts, bytes (the kit's default is 64 MiB): a SegmentFeatures slice
   * carries G² × D patch tokens (6 MiB in F32 at D = 1536), a start or Fit study may carry a gzipped NIfTI
   * mask or label map inline (a few MiB); upload chunks are 1 MiB and are forwarded to Preprocess
   * unchanged, so they must also fit its limit (4 MiB by default). Larger messages fail with
   * RESOURCE_EXHAUSTED before they are decoded.
   */
  CURIA_MAX_RECEIVE_MESSAGE_BYTES: positiveInt.default(16 * 1024 * 1024),
});

/** Parsed segment service settings. */
export type SegmentEnv = z.infer<typeof segmentEnvSchema>;
