import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { SERVICES } from './catalog.js';
import { repoRoot } from './launcher.js';

const root = repoRoot();
const segment = SERVICES.find((s) => s.name === 'segment')!;

/** Listens on 127.0.0.1:`port` (0 = any free port); resolves with the server, or null when taken. */
function occupy(port: number): Promise<Server | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(null));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function run(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, stderr })),
  );
}

const STACK_FRAME = /^\s+at /m;

describe('a port that another process holds', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  it('a service names the busy listener in one line and exits 3', async () => {
    const taken = (await occupy(0))!;
    servers.push(taken);
    const port = (taken.address() as { port: number }).port;
    const main = join(root, 'services/segment/dist/main.js');
    for (const [variable, listener] of [
      ['CURIA_GRPC_PORT', 'gRPC'],
      ['CURIA_METRICS_PORT', 'metrics'],
    ] as const) {
      const r = await run([main], { CURIA_GRPC_HOST: '127.0.0.1', [variable]: String(port) });
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(
        `curia-segment: cannot listen on 127.0.0.1:${port} (${listener}): the address is already in use\n`,
      );
      expect(r.stderr).not.toMatch(STACK_FRAME);
    }
  });

  it('`curia up` says which port of which service is busy and how to choose others', async () => {
    // A fixed-port cluster: find an offset whose segment gRPC port is free, then take it.
    let taken: Server | null = null;
    let offset = 0;
    for (let attempt = 0; !taken && attempt < 20; attempt++) {
      offset = 2000 + Math.floor(Math.random() * 8000);
      taken = await occupy(segment.grpcPort + offset);
    }
    servers.push(taken!);
    const r = await run([
      join(root, 'libs/cli/bin/curia.js'),
      'up',
      '--only',
      'segment',
      '--port-offset',
      String(offset),
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `curia: port ${segment.grpcPort + offset} (segment gRPC) is already in use — another Curia cluster may be running (\`curia up\` twice?); stop it, or pick other ports with --port-offset N`,
    );
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });
});
