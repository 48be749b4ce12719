import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { createCuriaChannel, createCuriaClient, type Channel } from '@curia/client';
import { Status } from 'nice-grpc-common';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { downstreamCallOptions } from './deadline.js';
import type { CuriaServer } from './server.js';
import { EchoDefinition } from './testing/echo-service.js';
import { startEchoServer } from './testing/echo-server.js';
import { createTestPki } from './testing/pki.js';

const servers: CuriaServer[] = [];
const channels: Channel[] = [];
afterEach(async () => {
  for (const c of channels.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.shutdown()));
});

const dir = mkdtempSync(join(tmpdir(), 'curia-tls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate. */
function makePki(): Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey', string> {
  const pki = createTestPki(dir);
  const server = pki.issue('server');
  const client = pki.issue('client');
  return {
    ca: pki.ca,
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
  };
}

describe('transport security', () => {
  it('serves TLS, and with a client CA requires a client certificate (mTLS)', async () => {
    const pki = makePki();
    const { server, ports } = await startEchoServer({
      CURIA_TLS_CERT_FILE: pki.serverCert,
      CURIA_TLS_KEY_FILE: pki.serverKey,
      CURIA_TLS_CLIENT_CA_FILE: pki.ca,
    });
    servers.push(server);
    const target = `127.0.0.1:${ports.grpcPort}`;
    const withCert = createCuriaChannel(target, {
      tls: { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey },
    });
    const noCert = createCuriaChannel(target, { tls: { caFile: pki.ca } });
    const plaintext = createCuriaChannel(target);
    channels.push(withCert, noCert, plaintext);
    await expect(createCuriaClient(EchoDefinition, withCert).unary({ text: 'ok' })).resolves.toMatchObject({
      text: 'ok',
    });
    await expect(
      createCuriaClient(EchoDefinition, noCert, { retryMaxAttempts: 1 }).mutate({}, { deadline: 3000 }),
    ).rejects.toMatchObject({ code: Status.UNAVAILABLE });
    await expect(
      createCuriaClient(EchoDefinition, plaintext, { retryMaxAttempts: 1 }).mutate({}, { deadline: 3000 }),
    ).rejects.toMatchObject({ code: Status.UNAVAILABLE });
  });
});

describe('client kit', () => {
  it('balances a static address list round-robin across replicas', async () => {
    const a = await startEchoServer();
    const b = await startEchoServer();
    servers.push(a.server, b.server);
    const channel = createCuriaChannel([`127.0.0.1:${a.ports.grpcPort}`, `127.0.0.1:${b.ports.grpcPort}`]);
    channels.push(channel);
    const client = createCuriaClient(EchoDefinition, channel);
    for (let i = 0; i < 20; i++) await client.mutate({ key: 'rr' });
    const na = a.attempts.get('rr') ?? 0;
    const nb = b.attempts.get('rr') ?? 0;
    expect(na + nb).toBe(20);
    expect(Math.abs(na - nb)).toBeLessThanOrEqual(2);
  });

  it('derives downstream deadlines from the caller’s', () => {
    const signal = new AbortController().signal;
    const deadline = new Date(Date.now() + 10_000);
    const half = downstreamCallOptions({ signal, deadline }, { fraction: 0.5 });
    expect(half.signal).toBe(signal);
    expect(half.deadline!.getTime() - Date.now()).toBeGreaterThan(4_000);
    expect(half.deadline!.getTime() - Date.now()).toBeLessThanOrEqual(5_000);
    expect(
      downstreamCallOptions({ signal, deadline }, { maxMs: 1_000 }).deadline!.getTime(),
    ).toBeLessThanOrEqual(Date.now() + 1_000);
    expect(downstreamCallOptions({ signal }).deadline).toBeUndefined();
  });
});
