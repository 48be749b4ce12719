import { CuriaError } from '@curia/errors';
import {
  failedStream,
  runService,
  serviceEnvSchema,
  serviceInfo,
  type CuriaCallContext,
  type ServiceEnv,
} from '@curia/kit';
import { descriptorSet, gateway } from '@curia/proto';

/** The gateway service implementation. */
export function createGatewayService(
  env: ServiceEnv,
): gateway.GatewayServiceImplementation<CuriaCallContext> {
  return {
    getInfo: () => Promise.resolve({ info: serviceInfo(gateway.GatewayServiceDefinition.fullName, env) }),
    analyzeStudy: () =>
      failedStream(new CuriaError('UNIMPLEMENTED', 'GatewayService.AnalyzeStudy is not available yet')),
  };
}

/** Process entry: serve GatewayService until SIGTERM. */
export async function main(): Promise<void> {
  await runService({
    name: 'gateway',
    schema: serviceEnvSchema,
    descriptorSet: descriptorSet(),
    setup: (server, env) => {
      server.add(gateway.GatewayServiceDefinition, createGatewayService(env));
      return {};
    },
  });
}
