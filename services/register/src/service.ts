import {
  ConcurrencyGate,
  runService,
  serviceInfo,
  type CuriaCallContext,
  type CuriaServer,
  type ServiceHooks,
  upstreamTls,
} from '@curia/kit';
import { register } from '@curia/proto';
import { selectRegistrationBackends, TS_BACKENDS, type SelectedBackends } from '@curia/register';
import { StageClients } from '@curia/stages';

import { registerEnvSchema, type RegisterEnv } from './config.js';
import { createRegisterMetrics } from './metrics.js';
import { DEFAULT_WORKING_SPACING_MM, DEFAULT_WORKING_SPACING_MM_CUDA } from './options.js';
import { registerPair, type RegisterDeps } from './register.js';

/** The register service implementation. */
export function createRegisterService(
  env: RegisterEnv,
  deps: RegisterDeps,
): register.RegisterServiceImplementation<CuriaCallContext> {
  const gate = new ConcurrencyGate({
    max: env.CURIA_REGISTER_MAX_CONCURRENT,
    retryAfterMs: env.CURIA_REGISTER_RETRY_AFTER_MS,
    setting: 'CURIA_REGISTER_MAX_CONCURRENT',
    what: 'this register replica',
    onChange: (n) => deps.metrics.inFlight.set(n),
    onShed: () => deps.metrics.shed.inc(),
  });
  return {
    getInfo: async (_req, context) => {
      const models = await deps.stages.listModels(context.signal).catch(() => []);
      return {
        info: serviceInfo(register.RegisterServiceDefinition.fullName, env, {
          models,
          demoWeightsLoaded: models.some((m) => m.demoWeights),
          limits: {
            max_upload_bytes: String(env.CURIA_REGISTER_MAX_UPLOAD_BYTES),
            max_upload_files: String(env.CURIA_REGISTER_MAX_UPLOAD_FILES),
            max_voxel_bytes: String(env.CURIA_REGISTER_MAX_VOXEL_BYTES),
            max_call_bytes: String(env.CURIA_REGISTER_MAX_CALL_BYTES),
            max_output_bytes: String(env.CURIA_REGISTER_MAX_OUTPUT_BYTES),
            max_concurrent_calls: String(env.CURIA_REGISTER_MAX_CONCURRENT),
            default_working_spacing_mm: String(deps.defaultWorkingSpacingMm),
            registration_device: 'device' in deps.backends ? String(deps.backends.device) : 'cpu',
          },
        }),
      };
    },
    register: async function* (requests, context) {
      const release = gate.admit();
      try {
        yield* registerPair(requests, context, deps);
      } finally {
        release();
      }
    },
  };
}

/** Opens the stage clients (Curia features) and registers RegisterService on `server`. */
export function setupRegister(server: CuriaServer, env: RegisterEnv): { deps: RegisterDeps } & ServiceHooks {
  const metrics = createRegisterMetrics(server.metrics);
  const upstream = upstreamTls(env);
  const stages = new StageClients(
    { preprocess: env.CURIA_PREPROCESS_TARGET, embed: env.CURIA_EMBED_TARGET },
    {
      attempts: env.CURIA_REGISTER_STAGE_ATTEMPTS,
      catalogTtlMs: 5_000,
      onRetry: (stage) => metrics.retries.inc({ stage }),
      ...(upstream ? { tls: upstream } : {}),
    },
  );
  const deps: RegisterDeps = {
    env,
    stages,
    metrics,
    log: server.log,
    onRetry: (stage) => metrics.retries.inc({ stage }),
    memory: server.memory,
    backends: TS_BACKENDS,
    defaultWorkingSpacingMm: env.CURIA_REGISTER_DEFAULT_WORKING_SPACING_MM ?? DEFAULT_WORKING_SPACING_MM,
  };
  let selected: SelectedBackends | undefined;
  server.add(register.RegisterServiceDefinition, createRegisterService(env, deps));
  return {
    deps,
    warmUp: async () => {
      selected = await selectRegistrationBackends(env.CURIA_REGISTER_BACKENDS, {
        executionProviders: env.CURIA_REGISTER_EXECUTION_PROVIDERS,
      });
      deps.backends = selected;
      if (env.CURIA_REGISTER_DEFAULT_WORKING_SPACING_MM === undefined && selected.device === 'cuda') {
        deps.defaultWorkingSpacingMm = DEFAULT_WORKING_SPACING_MM_CUDA;
      }
      server.log.info(
        {
          device: selected.device,
          defaultWorkingSpacingMm: deps.defaultWorkingSpacingMm,
          backends: Object.fromEntries(
            (['costVolume', 'mind', 'smoothing', 'warp'] as const).map((k) => [k, selected![k].name]),
          ),
        },
        'registration backends',
      );
    },
    close: async () => {
      stages.close();
      await selected?.close();
    },
  };
}

/** Process entry: serve RegisterService until SIGTERM. */
export async function main(): Promise<void> {
  await runService({
    name: 'register',
    schema: registerEnvSchema,
    setup: setupRegister,
  });
}
