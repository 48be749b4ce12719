import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Client, Server, ServerCredentials, credentials, type ServiceDefinition } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';

import { createCuriaChannel } from './channel.js';
import { parseTargetsFile, targetsFileUri, writeTargetsFile } from './targets-file.js';

const identity = (b: Buffer): Buffer => b;
const PING: ServiceDefinition = {
  ping: {
    path: '/curia.test.Ping/Ping',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

/** A server answering Ping with its own name; connections end after `maxAgeMs`. */
async function startServer(name: string, maxAgeMs: number): Promise<{ server: Server; port: number }> {
  const server = new Server({
    'grpc.max_connection_age_ms': maxAgeMs,
    'grpc.max_connection_age_grace_ms': 1_000,
  });
  server.addService(PING, {
    ping: (_call: unknown, cb: (err: null, res: Buffer) => void) => cb(null, Buffer.from(name)),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { server, port };
}

function ping(client: Client): Promise<string> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      PING.ping!.path,
      identity,
      identity,
      Buffer.alloc(0),
      { deadline: Date.now() + 2_000 },
      (err, res) => (err || !res ? reject(err ?? new Error('no response')) : resolve(res.toString())),
    ),
  );
}

describe('curia-targets resolver', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanup.splice(0)) c();
  });

  it('parses IPv4 and IPv6 entries, comments and separators, and rejects host names', () => {
    expect(parseTargetsFile('127.0.0.1:1 # a\n[::1]:2, 127.0.0.2:3\n\n')).toEqual([
      { addresses: [{ host: '127.0.0.1', port: 1 }] },
      { addresses: [{ host: '::1', port: 2 }] },
      { addresses: [{ host: '127.0.0.2', port: 3 }] },
    ]);
    expect(() => parseTargetsFile('localhost:80')).toThrow(/localhost:80/);
    expect(() => parseTargetsFile('127.0.0.1:70000')).toThrow(/IPv4:port/);
    expect(() => targetsFileUri('relative/path')).toThrow(/absolute/);
  });

  it('sends traffic to a replica added to the file within one max connection age', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'curia-targets-test-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const maxAgeMs = 1_000;
    const a = await startServer('a', maxAgeMs);
    const b = await startServer('b', maxAgeMs);
    cleanup.push(
      () => a.server.forceShutdown(),
      () => b.server.forceShutdown(),
    );
    const file = join(dir, 'ping.targets');
    writeTargetsFile(file, [`127.0.0.1:${a.port}`]);
    const channel = createCuriaChannel(targetsFileUri(file));
    const client = new Client(targetsFileUri(file), credentials.createInsecure(), {
      channelOverride: channel,
    });
    cleanup.push(() => client.close());
    for (let i = 0; i < 5; i++) expect(await ping(client)).toBe('a');

    writeTargetsFile(file, [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]);
    const added = Date.now();
    const seen = new Set<string>();
    let firstB = Number.NaN;
    while (Date.now() - added < 4 * maxAgeMs && Number.isNaN(firstB)) {
      const who = await ping(client);
      seen.add(who);
      if (who === 'b') firstB = Date.now() - added;
      await new Promise((r) => setTimeout(r, 20));
    }
    // Connection age is jittered by grpc-js (±20%), then the GOAWAY triggers a re-read.
    expect(firstB).toBeLessThan(maxAgeMs * 1.2 + 1_000);
    const after = await Promise.all(Array.from({ length: 20 }, () => ping(client)));
    expect(new Set(after)).toEqual(new Set(['a', 'b']));
  });

  it('fails calls with UNAVAILABLE while the file lists no address', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'curia-targets-test-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'empty.targets');
    writeTargetsFile(file, []);
    const client = new Client(targetsFileUri(file), credentials.createInsecure(), {
      channelOverride: createCuriaChannel(targetsFileUri(file)),
    });
    cleanup.push(() => client.close());
    await expect(ping(client)).rejects.toMatchObject({ code: 14 });
  });
});
