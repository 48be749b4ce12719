import { env, localStageTargets, serviceSchema, z } from '@curia/kit';

const { positiveInt, nonNegativeInt } = env;

/** Environment of the gateway: the kit's base settings plus stage targets and `CURIA_GATEWAY_*`. */
export const gatewayEnvSchema = serviceSchema({
  /** PreprocessService target: `host:port` (DNS, all records, round-robin) or a comma list of `ip:port`. */
  CURIA_PREPROCESS_TARGET: z.string().min(1).default(localStageTargets().CURIA_PREPROCESS_TARGET),
  /** EmbedService target (same forms). */
  CURIA_EMBED_TARGET: z.string().min(1).default(localStageTargets().CURIA_EMBED_TARGET),
  /** HeadsService target (same forms). */
  CURIA_HEADS_TARGET: z.string().min(1).default(localStageTargets().CURIA_HEADS_TARGET),
  /** SegmentService target (same forms), for AnalyzeStudy's segmentation heads. */
  CURIA_SEGMENT_TARGET: z.string().min(1).default(localStageTargets().CURIA_SEGMENT_TARGET),
  /** Bytes of slice features the embedding cache may hold (LRU eviction beyond). 0 disables the cache. */
  CURIA_GATEWAY_CACHE_MAX_BYTES: nonNegativeInt.default(512 * 1024 * 1024),
  /** Studies analysed concurrently by this replica; more are shed with RESOURCE_EXHAUSTED. */
  CURIA_GATEWAY_MAX_STUDIES: positiveInt.default(8),
  /** Largest streamed upload accepted per study, bytes. */
  CURIA_GATEWAY_MAX_UPLOAD_BYTES: positiveInt.default(2 * 1024 ** 3),
  /**
   * Most input voxels a study's `start.mask` may cover: the gateway holds the decoded mask at one byte
   * per input voxel for the duration of the study. Default 512 Mi voxels (e.g. 512×512×2048).
   */
  CURIA_GATEWAY_MAX_MASK_VOXELS: positiveInt.max(2 ** 31 - 1).default(512 * 1024 ** 2),
  /** Slices sent to Embed and not yet answered, per study (bounds gateway memory; Embed caps it at 16). */
  CURIA_GATEWAY_EMBED_WINDOW: positiveInt.max(64).default(16),
  /** Attempts per stage call on UNAVAILABLE (a dead replica), including the first. */
  CURIA_GATEWAY_STAGE_ATTEMPTS: positiveInt.max(10).default(3),
  /** Deadline used for a study when the caller sets none, ms. */
  CURIA_GATEWAY_DEFAULT_DEADLINE_MS: positiveInt.default(600_000),
  /** How long backend model/head listings are reused before asking again, ms. */
  CURIA_GATEWAY_CATALOG_TTL_MS: nonNegativeInt.default(5_000),
  /** Retry hint returned with RESOURCE_EXHAUSTED when the gateway sheds a study, ms. */
  CURIA_GATEWAY_RETRY_AFTER_MS: positiveInt.default(1_000),
  /**
   * Largest message the server accepts, bytes (the kit's default is 64 MiB): the start may carry the
   * study's mask inline (a gzipped NIfTI or RLE of a few MiB; dense masks belong in `rle`); upload
   * chunks are 1 MiB and are forwarded to Preprocess unchanged, so they must also fit its limit (4 MiB by
   * default). Larger messages fail with RESOURCE_EXHAUSTED before they are decoded.
   */
  CURIA_MAX_RECEIVE_MESSAGE_BYTES: positiveInt.default(16 * 1024 * 1024),
});

/** Parsed gateway environment. */
export type GatewayEnv = z.infer<typeof gatewayEnvSchema>;
