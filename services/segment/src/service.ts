import { hostname } from 'node:os';

import {
  ConcurrencyGate,
  runService,
  serviceInfo,
  type CuriaCallContext,
  type CuriaServer,
  upstreamTls,
  callerOf,
} from '@curia/kit';
import { segment } from '@curia/proto';
import { registryQuotas, setupOrFatal } from '@curia/registry';
import { EmbeddingCache, StageClients } from '@curia/stages';

import { segmentEnvSchema, type SegmentEnv } from './config.js';
import { segmentFeatures } from './features.js';
import { fitSegmentationHead } from './fit.js';
import { SegmentHeads } from './heads.js';
import { createSegmentMetrics } from './metrics.js';
import { segmentStudy, type SegmentDeps } from './segment.js';

/** The segment service implementation over its heads, stage clients and token cache. */
export function createSegmentService(
  env: SegmentEnv,
  deps: SegmentDeps,
): segment.SegmentServiceImplementation<CuriaCallContext> {
  const gate = new ConcurrencyGate({
    max: env.CURIA_SEGMENT_MAX_CONCURRENT,
    retryAfterMs: env.CURIA_SEGMENT_RETRY_AFTER_MS,
    setting: 'CURIA_SEGMENT_MAX_CONCURRENT',
    what: 'this segment replica',
    onChange: (n) => deps.metrics.inFlight.set(n),
    onShed: () => deps.metrics.shed.inc(),
  });
  const admit = () => gate.admit();
  return {
    getInfo: async (_req, context) => {
      const heads = deps.heads.list();
      const models = await deps.stages.listModels(context.signal).catch(() => []);
      return {
        info: serviceInfo(segment.SegmentServiceDefinition.fullName, env, {
          models,
          heads: heads.map((h) => h.info!),
          demoWeightsLoaded: models.some((m) => m.demoWeights) || heads.some((h) => h.info!.demo),
          limits: {
            max_upload_bytes: String(env.CURIA_SEGMENT_MAX_UPLOAD_BYTES),
            max_concurrent_calls: String(env.CURIA_SEGMENT_MAX_CONCURRENT),
            max_prompt_slices: String(env.CURIA_SEGMENT_MAX_PROMPT_SLICES),
            max_fit_slices: String(env.CURIA_SEGMENT_MAX_FIT_SLICES),
            cache_max_bytes: String(env.CURIA_SEGMENT_CACHE_MAX_BYTES),
          },
        }),
        segmentHeads: heads,
      };
    },
    segment: async function* (requests, context) {
      const release = admit();
      try {
        yield* segmentStudy(requests, context, deps);
      } finally {
        release();
      }
    },
    segmentFeatures: async function* (requests, context) {
      const release = admit();
      try {
        yield* segmentFeatures(requests, context, deps);
      } finally {
        release();
      }
    },
    fit: async (requests, context) => {
      const release = admit();
      try {
        return await fitSegmentationHead(requests, context, deps, callerOf(context));
      } finally {
        release();
      }
    },
    promoteHead: (req, context) => promoteSegmentHead(req, deps, callerOf(context)),
  };
}

/** PromoteHead: `caller` is who asks (recorded with the alias; the auth policy admits admins only). */
export async function promoteSegmentHead(
  req: segment.PromoteHeadRequest,
  deps: Pick<SegmentDeps, 'heads' | 'log'>,
  caller: string,
): Promise<segment.PromoteHeadResponse> {
  const { head, previous } = await deps.heads.promote(req.name, req.version, caller);
  deps.log.info(
    { head: head.info?.name, version: head.info?.version, previous: previous ?? '', caller },
    'segmentation head promoted',
  );
  return { head, previousVersion: previous ?? '' };
}

/** Opens the head store, the stage clients and the token cache, and registers SegmentService on `server`. */
export async function setupSegment(
  server: CuriaServer,
  env: SegmentEnv,
): Promise<{ deps: SegmentDeps; close: () => Promise<void> }> {
  const metrics = createSegmentMetrics(server.metrics);
  const heads = await SegmentHeads.open(
    {
      dir: env.CURIA_SEGMENT_HEADS_DIR,
      dsn: env.CURIA_SEGMENT_REGISTRY_DSN,
      quotas: registryQuotas({
        maxVersionsPerName: env.CURIA_SEGMENT_REGISTRY_MAX_VERSIONS_PER_NAME,
        maxVersionsTotal: env.CURIA_SEGMENT_REGISTRY_MAX_VERSIONS,
        maxBytesTotal: env.CURIA_SEGMENT_REGISTRY_MAX_BYTES,
      }),
      log: (level, message) => server.log[level](message),
      creator: `segment/${env.CURIA_REPLICA || hostname()}`,
      onSkip: (where, err) =>
        server.log.warn(
          { where, err: err instanceof Error ? err.message : String(err) },
          'skipping unreadable segmentation head',
        ),
    },
    env.CURIA_SEGMENT_EXECUTION_PROVIDERS,
  );
  const upstream = upstreamTls(env);
  const stages = new StageClients(
    { preprocess: env.CURIA_PREPROCESS_TARGET, embed: env.CURIA_EMBED_TARGET },
    {
      attempts: env.CURIA_SEGMENT_STAGE_ATTEMPTS,
      catalogTtlMs: 5_000,
      onRetry: (stage) => metrics.retries.inc({ stage }),
      ...(upstream ? { tls: upstream } : {}),
    },
  );
  const cache = new EmbeddingCache(env.CURIA_SEGMENT_CACHE_MAX_BYTES, {
    onSize: (bytes) => metrics.cacheBytes.set(bytes),
  });
  const deps: SegmentDeps = {
    env,
    stages,
    cache,
    heads,
    metrics,
    log: server.log,
    memory: server.memory,
    onRetry: (stage) => metrics.retries.inc({ stage }),
  };
  server.add(segment.SegmentServiceDefinition, createSegmentService(env, deps));
  server.log.info({ heads: heads.store.all().length, where: heads.where }, 'segmentation heads loaded');
  return {
    deps,
    close: async () => {
      stages.close();
      await heads.close();
    },
  };
}

/** Process entry: serve SegmentService until SIGTERM. */
export async function main(): Promise<void> {
  await runService({
    name: 'segment',
    schema: segmentEnvSchema,
    // Fitted heads that cannot be opened: NOT_SERVING, one error line, exit 1 (README, "Configuration").
    setup: (server, env) => setupOrFatal('segment', server, () => setupSegment(server, env)),
  });
}
