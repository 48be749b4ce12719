import { CuriaError } from '@curia/errors';
import {
  runService,
  serviceInfo,
  type CuriaCallContext,
  type CuriaServer,
  type ServiceHooks,
  upstreamTls,
} from '@curia/kit';
import { gateway } from '@curia/proto';
import { EmbeddingCache, StageClients } from '@curia/stages';

import { analyzeStudy, type AnalyzeDeps } from './analyze.js';
import { gatewayEnvSchema, type GatewayEnv } from './config.js';
import { createGatewayMetrics } from './metrics.js';

/** The gateway service implementation over its stage clients, cache and metrics. */
export function createGatewayService(
  env: GatewayEnv,
  deps: AnalyzeDeps,
): gateway.GatewayServiceImplementation<CuriaCallContext> {
  let inFlight = 0;
  return {
    getInfo: async (_req, context) => {
      const [models, heads] = await Promise.all([
        deps.stages.listModels(context.signal).catch(() => []),
        deps.stages.listHeads(context.signal),
      ]);
      return {
        info: serviceInfo(gateway.GatewayServiceDefinition.fullName, env, {
          models,
          heads,
          demoWeightsLoaded: models.some((m) => m.demoWeights),
          limits: {
            max_upload_bytes: String(env.CURIA_GATEWAY_MAX_UPLOAD_BYTES),
            max_concurrent_studies: String(env.CURIA_GATEWAY_MAX_STUDIES),
            cache_max_bytes: String(env.CURIA_GATEWAY_CACHE_MAX_BYTES),
            embed_window_slices: String(env.CURIA_GATEWAY_EMBED_WINDOW),
            max_mask_voxels: String(env.CURIA_GATEWAY_MAX_MASK_VOXELS),
          },
        }),
      };
    },
    analyzeStudy: async function* (requests, context) {
      if (inFlight >= env.CURIA_GATEWAY_MAX_STUDIES) {
        deps.metrics.shed.inc();
        throw new CuriaError(
          'RESOURCE_EXHAUSTED',
          `this gateway replica is analysing ${inFlight} studies (CURIA_GATEWAY_MAX_STUDIES); retry after ${env.CURIA_GATEWAY_RETRY_AFTER_MS}ms`,
          { retryAfterMs: env.CURIA_GATEWAY_RETRY_AFTER_MS },
        );
      }
      inFlight++;
      deps.metrics.studiesInFlight.set(inFlight);
      try {
        yield* analyzeStudy(requests, context, deps);
      } finally {
        inFlight--;
        deps.metrics.studiesInFlight.set(inFlight);
      }
    },
  };
}

/** Creates the stage clients, the embedding cache and registers GatewayService on `server`. */
export function setupGateway(server: CuriaServer, env: GatewayEnv): ServiceHooks {
  const metrics = createGatewayMetrics(server.metrics);
  const upstream = upstreamTls(env);
  const stages = new StageClients(
    {
      preprocess: env.CURIA_PREPROCESS_TARGET,
      embed: env.CURIA_EMBED_TARGET,
      heads: env.CURIA_HEADS_TARGET,
      segment: env.CURIA_SEGMENT_TARGET,
    },
    {
      attempts: env.CURIA_GATEWAY_STAGE_ATTEMPTS,
      catalogTtlMs: env.CURIA_GATEWAY_CATALOG_TTL_MS,
      onRetry: (stage) => metrics.retries.inc({ stage }),
      ...(upstream ? { tls: upstream } : {}),
    },
  );
  const cache = new EmbeddingCache(env.CURIA_GATEWAY_CACHE_MAX_BYTES, {
    onEvict: (n) => metrics.cacheEvictions.inc(n),
    onSize: (bytes, entries) => {
      metrics.cacheBytes.set(bytes);
      metrics.cacheEntries.set(entries);
    },
  });
  server.add(
    gateway.GatewayServiceDefinition,
    createGatewayService(env, { env, stages, cache, metrics, log: server.log, memory: server.memory }),
  );
  return { close: () => Promise.resolve(stages.close()) };
}

/** Process entry: serve GatewayService until SIGTERM. */
export async function main(): Promise<void> {
  await runService({
    name: 'gateway',
    schema: gatewayEnvSchema,
    setup: setupGateway,
  });
}
