import { join } from 'node:path';

import { env, serviceSchema, z } from '@curia/kit';
import { defaultCacheRoot } from '@curia/model';

import { defaultHeadsSchema } from './default-heads.js';

const { nonNegativeInt, positiveInt } = env;

/** Environment of the heads service: the kit's base settings plus `CURIA_HEADS_*`. */
export const headsEnvSchema = serviceSchema({
  /**
   * Head store root; layout `<name>/<version>/{head.json,weights.safetensors}`. Default:
   * `heads/` in Curia's cache (`$CURIA_CACHE_DIR`, else `~/.cache/curia`), beside the bundles.
   */
  CURIA_HEADS_DIR: z.string().min(1).default(join(defaultCacheRoot(), 'heads')),
  /**
   * The shared head registry: a PostgreSQL URL (`postgresql://user:password@host:5432/db`) that
   * every replica reads and writes (`@curia/registry`). Empty (the default): the filesystem store
   * at CURIA_HEADS_DIR, which needs no database. The password is never logged; the value is not
   * checked here because a configuration error would print it.
   */
  CURIA_HEADS_REGISTRY_DSN: z.string().default(''),
  /** Shared registry quota: most versions one head name may hold (RESOURCE_EXHAUSTED above); 0 = no limit. */
  CURIA_HEADS_REGISTRY_MAX_VERSIONS_PER_NAME: nonNegativeInt.default(100),
  /** Shared registry quota: most versions of all heads together; 0 = no limit. */
  CURIA_HEADS_REGISTRY_MAX_VERSIONS: nonNegativeInt.default(2000),
  /**
   * Shared registry quota: most stored bytes of all heads together; 0 = no limit. Every replica
   * holds every version in memory, so this bounds that memory too (the chart gives Heads 1 GiB).
   */
  CURIA_HEADS_REGISTRY_MAX_BYTES: nonNegativeInt.default(256 * 1024 * 1024),
  /**
   * Comma-separated Curia-format head folders imported into the store at startup. Append `#mask` to
   * import a 2D head for mask-pooled input (default: CLS input).
   */
  CURIA_HEADS_IMPORT: env.commaList.default([]),
  /**
   * Heads a caller gets when it asks for the deployment's default analysis (HeadInfo.is_default,
   * e.g. `curia analyze FILE` with no heads): comma list of `name` (its promoted version) or
   * `name@version`. Defaults that name no stored head are logged at startup and marked as soon as
   * a Fit or import creates them.
   */
  CURIA_HEADS_DEFAULT: defaultHeadsSchema,
  /** Most samples one Fit call may send (RESOURCE_EXHAUSTED above). */
  CURIA_HEADS_MAX_FIT_SAMPLES: positiveInt.default(100_000),
  /** Most feature bytes (as sent) one Fit call may send (RESOURCE_EXHAUSTED above). */
  CURIA_HEADS_MAX_FIT_BYTES: positiveInt.default(1024 * 1024 * 1024),
  /** Most slices one Predict call may carry (RESOURCE_EXHAUSTED above). */
  CURIA_HEADS_MAX_PREDICT_SLICES: positiveInt.default(4096),
  /**
   * Most tokens (selected slices × tokens per slice) one attention-3d Predict may attend over
   * (RESOURCE_EXHAUSTED above). Self-attention costs O(tokens²·hidden): 19 200 tokens (300 slices
   * × 64) take ~10 s at hidden 768 on 2 CPU cores; the default 32 768 allows 512 such slices.
   */
  CURIA_HEADS_MAX_ATTENTION_TOKENS: positiveInt.default(32_768),
  /**
   * Largest message the server accepts, bytes: kept at the kit's 64 MiB because Predict is unary and an
   * attention-3d head's features are all in it (CURIA_HEADS_MAX_ATTENTION_TOKENS × D values: 48 MiB in
   * F16 at 32 768 tokens × 768); Fit sample batches are ~1-8 MiB. Larger messages fail with
   * RESOURCE_EXHAUSTED before they are decoded.
   */
  CURIA_MAX_RECEIVE_MESSAGE_BYTES: positiveInt.default(64 * 1024 * 1024),
});

/** Parsed heads service settings. */
export type HeadsEnv = z.infer<typeof headsEnvSchema>;
