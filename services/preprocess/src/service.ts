import {
  runService,
  serviceInfo,
  UploadBufferPool,
  type CuriaCallContext,
  type CuriaServer,
  studyRef,
} from '@curia/kit';
import { featureSpaceOf } from '@curia/model';
import { preprocess } from '@curia/proto';
import { defaultSliceThreads, SlicePool } from '@curia/volume';

import { listBundles } from './bundles.js';
import { preprocessEnvSchema, type PreprocessEnv } from './config.js';
import { handlePreprocess } from './handler.js';
import { PreprocessServiceBulkDefinition } from '@curia/proto';
import { createPreprocessMetrics } from './metrics.js';

/** The slice thread pool `CURIA_PREPROCESS_SLICE_THREADS` asks for (null for 0: compute in-thread). */
export function createSlicePool(env: PreprocessEnv): SlicePool | null {
  const threads = env.CURIA_PREPROCESS_SLICE_THREADS ?? defaultSliceThreads();
  return threads > 0 ? new SlicePool(threads) : null;
}

/**
 * The preprocess service implementation, registering its metrics on `server`. With a `pool`,
 * slices are computed on its threads, `CURIA_PREPROCESS_PREFETCH_SLICES` ahead of the transport;
 * the caller owns the pool (closes it after the server drained). Without one they are computed on
 * the event loop.
 */
export function createPreprocessService(
  server: CuriaServer,
  env: PreprocessEnv,
  pool: SlicePool | null = null,
): preprocess.PreprocessServiceImplementation<CuriaCallContext> {
  const metrics = createPreprocessMetrics(server.metrics);
  const uploadPool =
    env.CURIA_PREPROCESS_UPLOAD_POOL_BYTES > 0
      ? new UploadBufferPool(env.CURIA_PREPROCESS_UPLOAD_POOL_BYTES, (b) => metrics.uploadPoolBytes.set(b))
      : undefined;
  const deps = {
    ...(uploadPool ? { uploadPool } : {}),
    pool,
    prefetch: env.CURIA_PREPROCESS_PREFETCH_SLICES,
    memory: server.memory,
    allowedRoots: env.CURIA_PREPROCESS_ALLOWED_ROOTS,
    bundlesDir: env.CURIA_BUNDLES_DIR,
    maxUploadBytes: env.CURIA_PREPROCESS_MAX_UPLOAD_BYTES,
    maxUploadFiles: env.CURIA_PREPROCESS_MAX_UPLOAD_FILES,
    metrics,
    onDone: (f: { studyId: string; slices: number; files: number; bytes: number }) =>
      server.log.info(
        { study: studyRef(f.studyId), slices: f.slices, files: f.files, bytes: f.bytes },
        'preprocessed',
      ),
  };
  return {
    getInfo: async (_req, context) => {
      const bundles = await listBundles(env.CURIA_BUNDLES_DIR, context.signal);
      return {
        info: serviceInfo(preprocess.PreprocessServiceDefinition.fullName, env, {
          models: bundles.map((m) => ({
            name: m.name,
            version: m.version,
            sha256: m.sha256,
            demoWeights: m.demo_weights,
            isDefault: false,
            featureSpace: featureSpaceOf(m),
          })),
          limits: {
            max_upload_bytes: String(env.CURIA_PREPROCESS_MAX_UPLOAD_BYTES),
            max_upload_files: String(env.CURIA_PREPROCESS_MAX_UPLOAD_FILES),
          },
        }),
      };
    },
    preprocess: (requests, context) => handlePreprocess(requests, context.signal, deps),
  };
}

/** Process entry: serve PreprocessService until SIGTERM. */
export async function main(): Promise<void> {
  await runService({
    name: 'preprocess',
    schema: preprocessEnvSchema,
    setup: (server, env) => {
      const pool = createSlicePool(env);
      server.add(PreprocessServiceBulkDefinition, createPreprocessService(server, env, pool));
      return { close: async () => pool?.close() };
    },
  });
}
