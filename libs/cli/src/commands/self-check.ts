import { createCuriaChannel, createCuriaClient } from '@curia/client';
import { SERVICE_DEFINITIONS, type CuriaServiceName } from '@curia/proto';

import type { LocalCluster } from '../cluster/launcher.js';

/**
 * Asks every replica for GetInfo through its own channel and prints what it serves (models,
 * execution provider, demo-weights flag) and how long the call took.
 */
export async function selfCheck(cluster: LocalCluster): Promise<void> {
  for (const e of cluster.endpoints()) {
    const channel = createCuriaChannel(`127.0.0.1:${e.grpcPort}`);
    try {
      const client = createCuriaClient(SERVICE_DEFINITIONS[e.grpcService as CuriaServiceName], channel);
      const t0 = performance.now();
      const { info } = await client.getInfo({}, { deadline: 10_000 });
      const ms = (performance.now() - t0).toFixed(1);
      const models = (info?.models ?? []).map(
        (m) => `${m.name}@${m.version}${m.demoWeights ? ' (DEMO WEIGHTS)' : ''}`,
      );
      const ep = info?.executionProvider ? ` ep=${info.executionProvider}` : '';
      process.stdout.write(
        `self-check: ${e.replica.padEnd(12)} GetInfo ${ms} ms  v${info?.version ?? '?'}${ep}${models.length ? `  models: ${models.join(', ')}` : ''}\n`,
      );
    } finally {
      channel.close();
    }
  }
}
