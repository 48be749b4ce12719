import { readFileSync } from 'node:fs';

import type { common } from '@curia/proto';

import { securityInfo } from './caller-auth.js';
import type { ServiceEnv } from './config.js';
import { memoryBudgetCapacity } from './memory-budget.js';

const kitVersion = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/**
 * The `ServiceInfo` every GetInfo returns: service name, version, build (from `CURIA_BUILD`,
 * set by the image build to the git sha), limits, plus what the service adds (models, heads,
 * execution provider).
 */
export function serviceInfo(
  /** Fully-qualified gRPC service name, e.g. `curia.embed.v1.EmbedService`. */
  service: string,
  env: ServiceEnv,
  extra: Partial<common.ServiceInfo> = {},
): common.ServiceInfo {
  return {
    service,
    version: kitVersion,
    build: process.env.CURIA_BUILD ?? 'dev',
    models: [],
    heads: [],
    executionProvider: '',
    executionProvidersAvailable: [],
    fallbackReason: '',
    demoWeightsLoaded: false,
    security: securityInfo(env),
    ...extra,
    limits: {
      max_receive_message_bytes: String(env.CURIA_MAX_RECEIVE_MESSAGE_BYTES),
      max_send_message_bytes: String(env.CURIA_MAX_SEND_MESSAGE_BYTES),
      max_connection_age_ms: String(env.CURIA_MAX_CONNECTION_AGE_MS),
      shutdown_grace_ms: String(env.CURIA_SHUTDOWN_GRACE_MS),
      memory_budget_bytes: String(memoryBudgetCapacity(env).bytes),
      ...extra.limits,
    },
  };
}
