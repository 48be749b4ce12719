import { createCuriaChannel, createCuriaClient, heads, type Channel } from '@curia/client';
import { CuriaServer, loadConfig } from '@curia/kit';

import { headsEnvSchema } from '../config.js';
import { setupHeads } from '../service.js';
import type { HeadStore } from '../store.js';

function headsClient(channel: Channel) {
  return createCuriaClient(heads.HeadsServiceDefinition, channel, { retryMaxAttempts: 1 });
}

/** A HeadsService client with the Curia middleware. */
export type HeadsClient = ReturnType<typeof headsClient>;

/** A heads server on 127.0.0.1 port 0 with a client (tests, benchmarks). */
export interface RunningHeads {
  readonly server: CuriaServer;
  readonly store: HeadStore;
  readonly channel: Channel;
  readonly client: HeadsClient;
  close(): Promise<void>;
}

/**
 * Starts a real heads server with `env` (CURIA_HEADS_DIR, or CURIA_HEADS_REGISTRY_DSN for the shared
 * registry) and connects a client; `close` also closes the store.
 */
export async function startHeadsServer(env: Record<string, string>): Promise<RunningHeads> {
  const config = loadConfig(headsEnvSchema, {
    CURIA_GRPC_HOST: '127.0.0.1',
    CURIA_LOG_LEVEL: 'silent',
    CURIA_PROCESS_METRICS: 'false',
    CURIA_SHUTDOWN_GRACE_MS: '1000',
    ...env,
  });
  const server = new CuriaServer({ name: 'heads', env: config });
  const { store } = await setupHeads(server, config);
  const ports = await server.start();
  server.setServing(true);
  const channel = createCuriaChannel(`127.0.0.1:${ports.grpcPort}`);
  const client = headsClient(channel);
  return {
    server,
    store,
    channel,
    client,
    async close() {
      channel.close();
      await server.shutdown();
      await store.close();
    },
  };
}
