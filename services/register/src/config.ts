import { env, localTarget, serviceSchema, z } from '@curia/kit';

const { positiveInt } = env;

/** Environment of the register service: the kit's base settings, its stage targets and `CURIA_REGISTER_*`. */
export const registerEnvSchema = serviceSchema({
  /** PreprocessService target (Curia features): `host:port` (DNS, all records, round-robin) or a comma list of `ip:port`. */
  CURIA_PREPROCESS_TARGET: z.string().min(1).default(localTarget('preprocess')),
  /** EmbedService target (Curia features), same forms. */
  CURIA_EMBED_TARGET: z.string().min(1).default(localTarget('embed')),
  /** Directories `file://` refs may point into (comma list); empty = refs refused, stream the files. */
  CURIA_REGISTER_ALLOWED_ROOTS: env.commaList.default([]),
  /** Bytes streamed over all inputs of one call. */
  CURIA_REGISTER_MAX_UPLOAD_BYTES: positiveInt.default(1024 ** 3),
  /** Files of one streamed input (a DICOM series). */
  CURIA_REGISTER_MAX_UPLOAD_FILES: positiveInt.default(5000),
  /** Stored voxel bytes of one input volume (RESOURCE_EXHAUSTED above). */
  CURIA_REGISTER_MAX_VOXEL_BYTES: positiveInt.default(512 * 1024 ** 2),
  /** Register calls this replica runs at once; more are shed with RESOURCE_EXHAUSTED. */
  CURIA_REGISTER_MAX_CONCURRENT: positiveInt.default(2),
  /** Retry hint sent with RESOURCE_EXHAUSTED when the replica sheds a call, ms. */
  CURIA_REGISTER_RETRY_AFTER_MS: positiveInt.default(2_000),
  /** Deadline of a call that sets none, ms. */
  CURIA_REGISTER_DEFAULT_DEADLINE_MS: positiveInt.default(600_000),
  /** Slices sent to Embed and not yet answered, per image (Curia features). */
  CURIA_REGISTER_EMBED_WINDOW: positiveInt.max(256).default(16),
  /**
   * Estimated peak bytes of one call (images, features, cost volume); larger registrations are refused
   * with RESOURCE_EXHAUSTED. Size the pod's memory for CURIA_REGISTER_MAX_CONCURRENT of these.
   */
  CURIA_REGISTER_MAX_CALL_BYTES: positiveInt.default(2 * 1024 ** 3),
  /** Largest output built whole (NIfTI displacement and warped files); slabs stream and are not limited. */
  CURIA_REGISTER_MAX_OUTPUT_BYTES: positiveInt.default(1024 ** 3),
  /** Attempts per stage call on UNAVAILABLE (Curia features), including the first. */
  CURIA_REGISTER_STAGE_ATTEMPTS: positiveInt.max(10).default(3),
  /** ONNX Runtime providers for the heavy steps, in preference order (`cuda,cpu` on GPU nodes). */
  CURIA_REGISTER_EXECUTION_PROVIDERS: env.executionProviders,
  /**
   * Where the heavy steps (MIND-SSC, cost volume, smoothing, warping) run: `auto` (ORT on CUDA when
   * the providers include it and a session loads, else ORT on CPU where measured faster than
   * TypeScript), `typescript`, or `onnx`.
   */
  CURIA_REGISTER_BACKENDS: z.enum(['auto', 'typescript', 'onnx']).default('auto'),
  /** Working spacing when a request leaves it unset, mm: 3 on CPU, 2 when the steps run on CUDA. */
  CURIA_REGISTER_DEFAULT_WORKING_SPACING_MM: z.coerce.number().min(0.5).max(20).optional(),
  /**
   * Largest message the server accepts, bytes (the kit's default is 64 MiB): every input, masks and label
   * maps included, is streamed in chunks of 1 MiB (the CLI and client library; re-chunked at 1 MiB for
   * Preprocess with Curia features), and the start only declares the inputs. Larger messages fail
   * with RESOURCE_EXHAUSTED before they are decoded.
   */
  CURIA_MAX_RECEIVE_MESSAGE_BYTES: positiveInt.default(4 * 1024 * 1024),
});

/** Parsed register service settings. */
export type RegisterEnv = z.infer<typeof registerEnvSchema>;
