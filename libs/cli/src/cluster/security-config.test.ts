import { spawn } from 'node:child_process';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { repoRoot } from './launcher.js';

const main = join(repoRoot(), 'services', 'preprocess', 'dist', 'main.js');

function run(env: Record<string, string>) {
  const child = spawn(process.execPath, [main], {
    env: {
      ...process.env,
      CURIA_GRPC_HOST: '127.0.0.1',
      CURIA_GRPC_PORT: '0',
      CURIA_METRICS_PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, stderr })),
  );
}

describe('security settings a service cannot work with', () => {
  it.each([
    [{ CURIA_AUTH: 'on' }, /CURIA_AUTH=on needs a way to identify callers/],
    [
      { CURIA_TLS_CERT_FILE: '/nonexistent/tls.crt' },
      /TLS needs both CURIA_TLS_CERT_FILE and CURIA_TLS_KEY_FILE/,
    ],
    [{ CURIA_AUDIT_KEY_FILE: '/nonexistent/audit.key' }, /CURIA_AUDIT_KEY_FILE: cannot read/],
    [{ CURIA_AUTH_CERT_ROLES: 'no-equals-sign' }, /CURIA_AUTH_CERT_ROLES: expected 'identity=role/],
  ])('%o: one line naming the variable, exit 2, no stack trace', async (env, message) => {
    const { code, stderr } = await run(env);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stderr).toMatch(/^curia-preprocess: invalid configuration: /);
    expect(stderr).not.toMatch(/^\s+at /m);
  });
});
