import { CuriaError } from '@curia/errors';
import {
  failedStream,
  runService,
  serviceEnvSchema,
  serviceInfo,
  type CuriaCallContext,
  type ServiceEnv,
} from '@curia/kit';
import { descriptorSet, segment } from '@curia/proto';

/** The segment service implementation. */
export function createSegmentService(
  env: ServiceEnv,
): segment.SegmentServiceImplementation<CuriaCallContext> {
  return {
    getInfo: () => Promise.resolve({ info: serviceInfo(segment.SegmentServiceDefinition.fullName, env) }),
    segment: () =>
      failedStream(
        new CuriaError(
          'UNIMPLEMENTED',
          'SegmentService.Segment is not available in this release; GetInfo lists what this deployment serves',
        ),
      ),
  };
}

/** Process entry: serve SegmentService until SIGTERM. */
export async function main(): Promise<void> {
  await runService({
    name: 'segment',
    schema: serviceEnvSchema,
    descriptorSet: descriptorSet(),
    setup: (server, env) => {
      server.add(segment.SegmentServiceDefinition, createSegmentService(env));
      return {};
    },
  });
}
