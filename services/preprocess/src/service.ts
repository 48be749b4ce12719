import { runService, serviceInfo, type CuriaCallContext, type CuriaServer } from '@curia/kit';
import { descriptorSet, preprocess } from '@curia/proto';

import { listBundles } from './bundles.js';
import { allowedRoots, preprocessEnvSchema, type PreprocessEnv } from './config.js';
import { handlePreprocess } from './handler.js';
import { createPreprocessMetrics } from './metrics.js';

/** The preprocess service implementation, registering its metrics on `server`. */
export function createPreprocessService(
  server: CuriaServer,
  env: PreprocessEnv,
): preprocess.PreprocessServiceImplementation<CuriaCallContext> {
  const metrics = createPreprocessMetrics(server.metrics);
  const deps = {
    allowedRoots: allowedRoots(env),
    bundlesDir: env.CURIA_BUNDLES_DIR,
    maxUploadBytes: env.CURIA_PREPROCESS_MAX_UPLOAD_BYTES,
    maxUploadFiles: env.CURIA_PREPROCESS_MAX_UPLOAD_FILES,
    metrics,
    onDone: (f: { studyId: string; slices: number; files: number; bytes: number }) =>
      server.log.info(
        { study_id: f.studyId, slices: f.slices, files: f.files, bytes: f.bytes },
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
    descriptorSet: descriptorSet(),
    setup: (server, env) => {
      server.add(preprocess.PreprocessServiceDefinition, createPreprocessService(server, env));
      return {};
    },
  });
}
