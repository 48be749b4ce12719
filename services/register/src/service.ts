import { CuriaError } from '@curia/errors';
import {
  failedStream,
  runService,
  serviceEnvSchema,
  serviceInfo,
  type CuriaCallContext,
  type ServiceEnv,
} from '@curia/kit';
import { register } from '@curia/proto';

/** The register service implementation. */
export function createRegisterService(
  env: ServiceEnv,
): register.RegisterServiceImplementation<CuriaCallContext> {
  return {
    getInfo: () => Promise.resolve({ info: serviceInfo(register.RegisterServiceDefinition.fullName, env) }),
    register: () =>
      failedStream(
        new CuriaError(
          'UNIMPLEMENTED',
          'RegisterService.Register is not available in this release; GetInfo lists what this deployment serves',
        ),
      ),
  };
}

/** Process entry: serve RegisterService until SIGTERM. */
export async function main(): Promise<void> {
  await runService({
    name: 'register',
    schema: serviceEnvSchema,
    setup: (server, env) => {
      server.add(register.RegisterServiceDefinition, createRegisterService(env));
      return {};
    },
  });
}
