import { env, serviceSchema, z, type ServiceEnv } from '@curia/kit';

const { positiveInt, nonNegativeInt } = env;

/** Environment of the preprocess service: the base service settings plus its own limits. */
export const preprocessEnvSchema = serviceSchema({
  /**
   * Comma-separated directories under which `file://` refs may resolve (after symlinks). Empty (default):
   * every `ref` source is refused with FAILED_PRECONDITION.
   */
  CURIA_PREPROCESS_ALLOWED_ROOTS: env.commaList.default([]),
  /** Largest total upload (sum of all streamed files), bytes. Default 2 GiB. */
  CURIA_PREPROCESS_MAX_UPLOAD_BYTES: positiveInt.default(2 * 1024 ** 3),
  /**
   * Bytes of upload buffers kept between calls for reuse (a single-file upload of announced size
   * takes one; default 320 MiB, two 150 MiB CTs; 0 = none, every upload allocates fresh memory).
   */
  CURIA_PREPROCESS_UPLOAD_POOL_BYTES: nonNegativeInt.default(320 * 1024 * 1024),
  /** Largest number of streamed files (DICOM instances) per request. Default 5000. */
  CURIA_PREPROCESS_MAX_UPLOAD_FILES: positiveInt.default(5000),
  /**
   * Worker threads gathering input planes and computing resize + normalisation (and F16) off the
   * event loop, shared by all calls.
   * Default: one per CPU (cores, capped by a cgroup CPU limit; at most 32); 0 computes on the
   * event loop (no overlap with encoding and network writes).
   */
  CURIA_PREPROCESS_SLICE_THREADS: nonNegativeInt.max(64).optional(),
  /** Slices one call computes ahead of what the transport has taken (default 2 per thread, >= 2). */
  CURIA_PREPROCESS_PREFETCH_SLICES: positiveInt.max(64).optional(),
  /** Directory whose sub-directories are model bundles (each holding bundle.json); unset = none. */
  CURIA_BUNDLES_DIR: z.string().optional(),
  /**
   * Largest message the server accepts, bytes (the kit's default is 64 MiB): uploads arrive in chunks of
   * 1 MiB (the CLI, the client library, and Gateway/Segment/Register forward their callers' chunks
   * unchanged) and a start is small (slice indices are capped at 32 768). Larger messages fail with
   * RESOURCE_EXHAUSTED before they are decoded.
   */
  CURIA_MAX_RECEIVE_MESSAGE_BYTES: positiveInt.default(4 * 1024 * 1024),
});

/** Parsed preprocess service settings. */
export type PreprocessEnv = z.infer<typeof preprocessEnvSchema> & ServiceEnv;
