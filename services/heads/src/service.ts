import { CuriaError } from '@curia/errors';
import {
  runService,
  serviceEnvSchema,
  serviceInfo,
  type CuriaCallContext,
  type ServiceEnv,
} from '@curia/kit';
import { descriptorSet, heads } from '@curia/proto';

/** The heads service implementation. */
export function createHeadsService(env: ServiceEnv): heads.HeadsServiceImplementation<CuriaCallContext> {
  return {
    getInfo: () => Promise.resolve({ info: serviceInfo('heads', env) }),
    listHeads: () =>
      Promise.reject(new CuriaError('UNIMPLEMENTED', 'HeadsService.ListHeads is not available yet')),
    getHead: () =>
      Promise.reject(new CuriaError('UNIMPLEMENTED', 'HeadsService.GetHead is not available yet')),
    predict: () =>
      Promise.reject(new CuriaError('UNIMPLEMENTED', 'HeadsService.Predict is not available yet')),
    fit: () => Promise.reject(new CuriaError('UNIMPLEMENTED', 'HeadsService.Fit is not available yet')),
  };
}

/** Process entry: serve HeadsService until SIGTERM. */
export async function main(): Promise<void> {
  await runService({
    name: 'heads',
    schema: serviceEnvSchema,
    descriptorSet: descriptorSet(),
    setup: (server, env) => {
      server.add(heads.HeadsServiceDefinition, createHeadsService(env));
      return {};
    },
  });
}
