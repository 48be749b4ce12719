import {
  runService,
  serviceInfo,
  type CuriaCallContext,
  type CuriaServer,
  type ServiceHooks,
} from '@curia/kit';
import { WorkerEmbedEngine } from '@curia/model';
import { embed, type common } from '@curia/proto';

import { embedEnvSchema, type EmbedEnv } from './config.js';
import { handleEmbed, type EmbedDeps } from './handler.js';
import { createEmbedMetrics } from './metrics.js';
import { ModelRegistry } from './models.js';
import { EmbedScheduler } from './scheduler.js';

/** The ServiceInfo GetInfo returns: models, provider, fallback reason and limits. */
export function embedServiceInfo(env: EmbedEnv, registry: ModelRegistry): common.ServiceInfo {
  const { provider, fallbackReason } = registry.executionProvider();
  return serviceInfo(embed.EmbedServiceDefinition.fullName, env, {
    models: registry.entries.map((e) => e.info),
    executionProvider: provider,
    // onnxruntime-node ships the CPU provider; a GPU build would report the provider that loaded.
    executionProvidersAvailable: [...new Set(['cpu', provider])],
    fallbackReason,
    demoWeightsLoaded: registry.entries.some((e) => e.info.demoWeights),
    limits: {
      max_batch_size: String(env.CURIA_EMBED_MAX_BATCH),
      max_queue_depth: String(env.CURIA_EMBED_MAX_QUEUE_SLICES),
      max_queue_delay_ms: String(env.CURIA_EMBED_MAX_QUEUE_DELAY_MS),
      max_inflight_per_stream: String(env.CURIA_EMBED_MAX_INFLIGHT_PER_STREAM),
      max_slices: String(env.CURIA_EMBED_MAX_SLICES_PER_STREAM),
      max_concurrent_streams: String(env.CURIA_MAX_CONCURRENT_STREAMS),
    },
  });
}

/** The EmbedService implementation over loaded models and a shared batcher. */
export function createEmbedService(
  env: EmbedEnv,
  deps: EmbedDeps,
): embed.EmbedServiceImplementation<CuriaCallContext> {
  const info = embedServiceInfo(env, deps.registry);
  return {
    getInfo: () => Promise.resolve({ info }),
    listModels: () => Promise.resolve({ models: info.models }),
    embed: (request, context) => handleEmbed(request, context, deps),
  };
}

/** The hooks {@link setupEmbedService} returns, plus the loaded models. */
export type EmbedServiceHooks = Required<ServiceHooks> & { readonly registry: ModelRegistry };

/**
 * Loads every model, creates the shared batcher and registers EmbedService on `server`.
 * The hooks warm each model up (one forward) before SERVING and release everything after drain.
 */
export async function setupEmbedService(server: CuriaServer, env: EmbedEnv): Promise<EmbedServiceHooks> {
  const registry = await ModelRegistry.load(env, server.log);
  const metrics = createEmbedMetrics(server.metrics);
  const scheduler = new EmbedScheduler(
    {
      maxBatch: env.CURIA_EMBED_MAX_BATCH,
      maxQueueDelayMs: env.CURIA_EMBED_MAX_QUEUE_DELAY_MS,
      maxQueueSlices: env.CURIA_EMBED_MAX_QUEUE_SLICES,
    },
    metrics,
  );
  const deps: EmbedDeps = {
    registry,
    scheduler,
    metrics,
    log: server.log,
    memory: server.memory,
    limits: {
      maxInflightPerStream: env.CURIA_EMBED_MAX_INFLIGHT_PER_STREAM,
      maxSlicesPerStream: env.CURIA_EMBED_MAX_SLICES_PER_STREAM,
    },
  };
  server.add(embed.EmbedServiceDefinition, createEmbedService(env, deps));
  for (const e of registry.entries) {
    // A dead engine thread cannot come back: stop advertising SERVING and let the process restart.
    if (e.engine instanceof WorkerEmbedEngine) e.engine.onFailure((err) => server.fatal(err));
  }
  return {
    registry,
    warmUp: async () => {
      for (const e of registry.entries) {
        const t0 = performance.now();
        await e.engine.run(new Float32Array(e.engine.pixelsPerSlice), 1, {
          outputs: ['last_hidden_state', 'last_block_prenorm'],
        });
        server.log.info({ model: e.key, ms: Math.round(performance.now() - t0) }, 'model warmed up');
      }
    },
    close: async () => {
      scheduler.close();
      await registry.close();
    },
  };
}

/** Process entry: serve EmbedService until SIGTERM. */
export async function main(): Promise<void> {
  await runService({
    name: 'embed',
    schema: embedEnvSchema,
    setup: setupEmbedService,
  });
}
