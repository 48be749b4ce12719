/**
 * Applies the head registry's schema migrations once and exits: the body of a deployment's
 * migration Job (e.g. a Helm pre-install/pre-upgrade hook), so a release's replicas find the schema
 * ready. Replicas migrate at startup too, under the same advisory lock, so the Job is an ordering
 * convenience, never a race.
 *
 *   CURIA_REGISTRY_DSN=postgresql://… node libs/registry/dist/migrate-main.js
 *
 * The DSN is the first set of CURIA_REGISTRY_DSN, CURIA_HEADS_REGISTRY_DSN, CURIA_SEGMENT_REGISTRY_DSN.
 * One line on stdout (what was applied) and exit 0; one line on stderr and exit 1 when the database
 * cannot be reached or a migration is refused; exit 2 without a DSN. The password is never printed.
 */
import pg from 'pg';

import { migrate, MIGRATIONS } from './migrations.js';
import { redactDsn, redactMessage } from './pg-registry.js';

/** The variables a DSN is read from, first set wins. */
export const MIGRATE_DSN_VARIABLES = [
  'CURIA_REGISTRY_DSN',
  'CURIA_HEADS_REGISTRY_DSN',
  'CURIA_SEGMENT_REGISTRY_DSN',
] as const;

const dsn = MIGRATE_DSN_VARIABLES.map((k) => process.env[k]?.trim() ?? '').find((v) => v !== '');
if (!dsn) {
  process.stderr.write(`curia-registry-migrate: set one of ${MIGRATE_DSN_VARIABLES.join(', ')}\n`);
  process.exit(2);
}
const where = redactDsn(dsn);
const client = new pg.Client({ connectionString: dsn, connectionTimeoutMillis: 10_000 });
client.on('error', () => undefined);
try {
  await client.connect();
  const applied = await migrate(client);
  const latest = Math.max(...MIGRATIONS.map((m) => m.version));
  process.stdout.write(
    applied.length > 0
      ? `curia-registry-migrate: ${where}: applied ${applied.join(', ')}; schema at version ${latest}\n`
      : `curia-registry-migrate: ${where}: schema already at version ${latest}\n`,
  );
  await client.end();
} catch (e) {
  process.stderr.write(
    `curia-registry-migrate: ${where}: ${redactMessage(e instanceof Error ? e.message : String(e), dsn)}\n`,
  );
  await client.end().catch(() => undefined);
  process.exit(1);
}
