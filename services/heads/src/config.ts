import { homedir } from 'node:os';
import { join } from 'node:path';

import { serviceSchema, z } from '@curia/kit';

const positiveInt = z.coerce.number().int().positive();

/** Environment of the heads service: the kit's base settings plus `CURIA_HEADS_*`. */
export const headsEnvSchema = serviceSchema({
  /** Head store root; layout `<name>/<version>/{head.json,weights.safetensors}`. */
  CURIA_HEADS_DIR: z
    .string()
    .min(1)
    .default(join(homedir(), '.cache', 'curia', 'heads')),
  /**
   * Comma-separated Curia-format head folders imported into the store at startup. Append `#mask` to
   * import a 2D head for mask-pooled input (default: CLS input).
   */
  CURIA_HEADS_IMPORT: z.string().default(''),
  /** Most samples one Fit call may send (RESOURCE_EXHAUSTED above). */
  CURIA_HEADS_MAX_FIT_SAMPLES: positiveInt.default(100_000),
  /** Most feature bytes (as sent) one Fit call may send (RESOURCE_EXHAUSTED above). */
  CURIA_HEADS_MAX_FIT_BYTES: positiveInt.default(1024 * 1024 * 1024),
  /** Most slices one Predict call may carry (RESOURCE_EXHAUSTED above). */
  CURIA_HEADS_MAX_PREDICT_SLICES: positiveInt.default(4096),
});

/** Parsed heads service settings. */
export type HeadsEnv = z.infer<typeof headsEnvSchema>;
