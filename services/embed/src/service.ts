import { CuriaError } from '@curia/errors';
import {
  failedStream,
  runService,
  serviceEnvSchema,
  serviceInfo,
  type CuriaCallContext,
  type ServiceEnv,
} from '@curia/kit';
import { descriptorSet, embed } from '@curia/proto';

/** The embed service implementation. */
export function createEmbedService(env: ServiceEnv): embed.EmbedServiceImplementation<CuriaCallContext> {
  return {
    getInfo: () => Promise.resolve({ info: serviceInfo('embed', env) }),
    listModels: () =>
      Promise.reject(new CuriaError('UNIMPLEMENTED', 'EmbedService.ListModels is not available yet')),
    embed: () => failedStream(new CuriaError('UNIMPLEMENTED', 'EmbedService.Embed is not available yet')),
  };
}

/** Process entry: serve EmbedService until SIGTERM. */
export async function main(): Promise<void> {
  await runService({
    name: 'embed',
    schema: serviceEnvSchema,
    descriptorSet: descriptorSet(),
    setup: (server, env) => {
      server.add(embed.EmbedServiceDefinition, createEmbedService(env));
      return {};
    },
  });
}
