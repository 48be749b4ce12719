import { createCuriaChannel, createCuriaClient } from '@curia/client';
import { CuriaServer, loadConfig, type Logger } from '@curia/kit';
import type { preprocess } from '@curia/proto';

import { preprocessEnvSchema } from '../config.js';
import { createPreprocessService, createSlicePool } from '../service.js';
import { PreprocessServiceBulkDefinition } from '@curia/proto';

/** A running preprocess server on port 0 plus a client; `close()` shuts both down. */
export interface Harness {
  readonly server: CuriaServer;
  readonly client: preprocess.PreprocessServiceClient;
  readonly grpcPort: number;
  close(): Promise<void>;
}

/** Starts a real PreprocessService on 127.0.0.1:0 with `env` overrides (and its own `logger`). */
export async function startPreprocessServer(
  env: Record<string, string> = {},
  options: { readonly logger?: Logger } = {},
): Promise<Harness> {
  const cfg = loadConfig(preprocessEnvSchema, {
    CURIA_GRPC_HOST: '127.0.0.1',
    CURIA_LOG_LEVEL: 'silent',
    CURIA_PROCESS_METRICS: 'false',
    ...env,
  });
  const server = new CuriaServer({
    name: 'preprocess',
    env: cfg,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const pool = createSlicePool(cfg);
  server.add(PreprocessServiceBulkDefinition, createPreprocessService(server, cfg, pool));
  const ports = await server.start();
  server.setServing(true);
  const channel = createCuriaChannel(`127.0.0.1:${ports.grpcPort}`);
  const client = createCuriaClient(PreprocessServiceBulkDefinition, channel, {
    retryMaxAttempts: 1,
    defaultDeadlineMs: 600_000,
  });
  return {
    server,
    client,
    grpcPort: ports.grpcPort,
    close: async () => {
      channel.close();
      await server.shutdown();
      await pool?.close();
    },
  };
}

/** Splits files into FileChunk request messages of at most `chunkBytes`. */
export function* chunkMessages(
  files: readonly { name: string; data: Uint8Array }[],
  chunkBytes: number,
): Generator<preprocess.PreprocessRequest> {
  for (const f of files) {
    for (let o = 0; o === 0 || o < f.data.length; o += chunkBytes) {
      const data = f.data.subarray(o, o + chunkBytes);
      yield {
        msg: {
          $case: 'chunk',
          value: { fileName: f.name, data, offset: o, lastChunk: o + chunkBytes >= f.data.length },
        },
      };
    }
  }
}

/** Turns request messages into the AsyncIterable a bidi call takes (one message per tick). */
export async function* requestStream<T>(msgs: Iterable<T>): AsyncGenerator<T> {
  for (const m of msgs) yield await Promise.resolve(m);
}
