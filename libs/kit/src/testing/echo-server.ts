import { CuriaError, type ErrorCode } from '@curia/errors';
import { trace } from '@opentelemetry/api';
import { delay } from 'abort-controller-x';

import { loadConfig, serviceEnvSchema } from '../config.js';
import type { Logger } from '../logger.js';
import { CuriaServer } from '../server.js';
import { EchoDefinition, type EchoMessage } from './echo-service.js';

/** Starts the kit's test echo service on a real port (127.0.0.1, port 0 unless `env` says otherwise). */
export async function startEchoServer(
  env: Record<string, string> = {},
  options: { descriptorSet?: Uint8Array; logger?: Logger } = {},
) {
  const server = new CuriaServer({
    name: 'echo',
    env: loadConfig(serviceEnvSchema, {
      CURIA_GRPC_HOST: '127.0.0.1',
      CURIA_LOG_LEVEL: 'silent',
      CURIA_PROCESS_METRICS: 'false',
      ...env,
    }),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.descriptorSet ? { descriptorSet: options.descriptorSet } : {}),
  });
  const attempts = new Map<string, number>();
  const handle = async (req: EchoMessage, ctx: { signal: AbortSignal; deadline: Date | undefined }) => {
    const attempt = (attempts.get(req.key ?? '') ?? 0) + 1;
    attempts.set(req.key ?? '', attempt);
    if (req.fail === 'BOOM') throw new Error('secret internal detail');
    if (req.fail && attempt <= 2)
      throw new CuriaError(req.fail as ErrorCode, `failing on purpose (${req.fail})`);
    if (req.delayMs) await delay(ctx.signal, req.delayMs);
    return {
      text: req.text ?? '',
      attempt,
      traceId: trace.getActiveSpan()?.spanContext().traceId ?? '',
      ...(ctx.deadline ? { deadlineMs: ctx.deadline.getTime() } : {}),
      ...(req.padding ? { text: 'x'.repeat(req.padding) } : {}),
    };
  };
  server.add(EchoDefinition, {
    unary: handle,
    mutate: handle,
    async *serverStream(req, ctx) {
      for (let i = 0; i < (req.count ?? 3); i++) {
        if (req.delayMs) await delay(ctx.signal, req.delayMs);
        yield { text: String(i) };
      }
    },
  });
  const ports = await server.start();
  server.setServing(true);
  return { server, ports, attempts };
}
