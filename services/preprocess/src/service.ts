import { CuriaError } from '@curia/errors';
import {
  failedStream,
  runService,
  serviceEnvSchema,
  serviceInfo,
  type CuriaCallContext,
  type ServiceEnv,
} from '@curia/kit';
import { descriptorSet, preprocess } from '@curia/proto';

/** The preprocess service implementation. */
export function createPreprocessService(
  env: ServiceEnv,
): preprocess.PreprocessServiceImplementation<CuriaCallContext> {
  return {
    getInfo: () => Promise.resolve({ info: serviceInfo('preprocess', env) }),
    preprocess: () =>
      failedStream(new CuriaError('UNIMPLEMENTED', 'PreprocessService.Preprocess is not available yet')),
  };
}

/** Process entry: serve PreprocessService until SIGTERM. */
export async function main(): Promise<void> {
  await runService({
    name: 'preprocess',
    schema: serviceEnvSchema,
    descriptorSet: descriptorSet(),
    setup: (server, env) => {
      server.add(preprocess.PreprocessServiceDefinition, createPreprocessService(env));
      return {};
    },
  });
}
