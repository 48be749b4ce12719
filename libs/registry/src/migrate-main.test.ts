import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

import { startTestPostgres } from './testing.js';

const started = await startTestPostgres();
const server = 'unavailable' in started ? undefined : started;
if ('unavailable' in started) {
  if (process.env.CI === 'true') throw new Error(`PostgreSQL is required under CI: ${started.unavailable}`);
  console.log(`skipping the registry migration Job test: ${started.unavailable}`);
}
afterAll(async () => {
  await server?.destroy();
});

const main = fileURLToPath(new URL('../dist/migrate-main.js', import.meta.url));

/** Runs the built entry point with only `env` (plus PATH) set. */
function run(env: Record<string, string>): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [main], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe.skipIf(!server)('migrate-main (the migration Job)', () => {
  it('applies the schema once, then finds it current; refuses without a DSN or with a wrong password, never printing it', () => {
    expect(existsSync(main), `${main} is missing: npm run build first`).toBe(true);
    const first = run({ CURIA_REGISTRY_DSN: server!.dsn });
    expect(first.code).toBe(0);
    expect(first.out).toMatch(
      /^curia-registry-migrate: postgresql:\/\/curia@127\.0\.0\.1:\d+\/postgres: applied 1;/,
    );
    const again = run({ CURIA_HEADS_REGISTRY_DSN: server!.dsn });
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/schema already at version 1\n$/);
    expect(first.out + again.out).not.toContain(server!.password);

    expect(run({}).code).toBe(2);
    const wrong = run({
      CURIA_SEGMENT_REGISTRY_DSN: server!.dsn.replace(server!.password, 'wrong-secret-9'),
    });
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/password authentication failed/);
    expect(wrong.err + wrong.out).not.toContain('wrong-secret-9');
  });
});
