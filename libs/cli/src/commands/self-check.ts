import type { LocalCluster } from '../cluster/launcher.js';

/**
 * Runs a short end-to-end analysis through the gateway and prints what each stage did.
 * (Filled in with the gateway; until then it reports each service's GetInfo.)
 */
export async function selfCheck(cluster: LocalCluster): Promise<void> {
  process.stdout.write(`self-check: ${cluster.endpoints().length} replicas up\n`);
  await Promise.resolve();
}
