import { join } from 'node:path';

import { env, serviceSchema, z } from '@curia/kit';
import { defaultCacheRoot } from '@curia/model';

import { defaultHeadsSchema } from './default-heads.js';

const { positiveInt } = env;

/** Environment of the heads service: the kit's base settings plus `CURIA_HEADS_*`. */
export const headsEnvSchema = serviceSchema({
  /**
   * Head store root; layout `<name>/<version>/{head.json,weights.safetensors}`. Default:
   * `heads/` in Curia's cache (`$CURIA_CACHE_DIR`, else `~/.cache/curia`), beside the bundles.
   */
  CURIA_HEADS_DIR: z.string().min(1).default(join(defaultCacheRoot(), 'heads')),
  /**
   * Comma-separated Curia-format head folders imported into the store at startup. Append `#mask` to
   * import a 2D head for mask-pooled input (default: CLS input).
   */
  CURIA_HEADS_IMPORT: env.commaList.default([]),
  /**
   * Heads a caller gets when it asks for the deployment's default analysis (HeadInfo.is_default,
   * e.g. `curia analyze FILE` with no heads): comma list of `name` (its latest version) or
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
});

/** Parsed heads service settings. */
export type HeadsEnv = z.infer<typeof headsEnvSchema>;
