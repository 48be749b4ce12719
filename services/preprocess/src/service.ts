import { CuriaError } from '@curia/errors';
import {
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
    getInfo: async () => Promise.resolve({ info: serviceInfo('preprocess', env) }),
    // eslint-disable-next-line require-yield
    async *preprocess() {
      throw new CuriaError('UNIMPLEMENTED', 'PreprocessService.Preprocess is not available yet');
    },
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
