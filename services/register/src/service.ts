import { CuriaError } from '@curia/errors';
import {
  runService,
  serviceEnvSchema,
  serviceInfo,
  type CuriaCallContext,
  type ServiceEnv,
} from '@curia/kit';
import { descriptorSet, register } from '@curia/proto';

/** The register service implementation. */
export function createRegisterService(
  env: ServiceEnv,
): register.RegisterServiceImplementation<CuriaCallContext> {
  return {
    getInfo: async () => Promise.resolve({ info: serviceInfo('register', env) }),
    // eslint-disable-next-line require-yield
    async *register() {
      throw new CuriaError(
        'UNIMPLEMENTED',
        'RegisterService.Register is not available in this release; see GetInfo for what this deployment serves',
      );
    },
  };
}

/** Process entry: serve RegisterService until SIGTERM. */
export async function main(): Promise<void> {
  await runService({
    name: 'register',
    schema: serviceEnvSchema,
    descriptorSet: descriptorSet(),
    setup: (server, env) => {
      server.add(register.RegisterServiceDefinition, createRegisterService(env));
      return {};
    },
  });
}
