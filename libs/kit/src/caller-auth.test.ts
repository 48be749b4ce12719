import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import { createCuriaChannel, createCuriaClient, type Channel } from '@curia/client';
import { HealthDefinition } from 'nice-grpc-server-health';
import { Metadata, Status } from 'nice-grpc-common';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { createLogger } from './logger.js';
import type { CuriaServer } from './server.js';
import { checkStudyId, studyRef } from './study-id.js';
import { startEchoServer } from './testing/echo-server.js';
import { EchoDefinition } from './testing/echo-service.js';
import { createTestIssuer } from './testing/jwt.js';
import { createTestPki } from './testing/pki.js';

const servers: CuriaServer[] = [];
const channels: Channel[] = [];
afterEach(async () => {
  for (const c of channels.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.shutdown()));
});
const dir = mkdtempSync(join(tmpdir(), 'curia-auth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pki = createTestPki(dir);
const serverCert = pki.issue('echo-server');
const policyFile = join(dir, 'policy.json');
writeFileSync(
  policyFile,
  JSON.stringify({
    rules: [
      { method: '/grpc.health.v1.Health/*', roles: ['*'] },
      { method: '*/Mutate', roles: ['admin'] },
      { method: '*', roles: ['client', 'admin'] },
    ],
  }),
);

function captureLogs(): { logger: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return {
    logger: createLogger('echo', 'info', '', sink),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

function channel(port: number, tls?: { certFile?: string; keyFile?: string; caFile?: string }): Channel {
  const c = createCuriaChannel(`127.0.0.1:${port}`, tls ? { tls: { caFile: pki.ca, ...tls } } : {});
  channels.push(c);
  return c;
}

describe('caller authentication, per-method policy and audit', () => {
  it('mTLS identities get the roles CURIA_AUTH_CERT_ROLES gives them; the policy decides per method', async () => {
    const admin = pki.issue('ops-admin');
    const client = pki.issue('curia-gateway');
    const stranger = pki.issue('stranger');
    const logs = captureLogs();
    const { server, ports } = await startEchoServer(
      {
        CURIA_LOG_LEVEL: 'info',
        CURIA_TLS_CERT_FILE: serverCert.cert,
        CURIA_TLS_KEY_FILE: serverCert.key,
        CURIA_TLS_CLIENT_CA_FILE: pki.ca,
        CURIA_AUTH: 'on',
        CURIA_AUTH_CERT_ROLES: 'curia-gateway=client; ops-admin=admin',
        CURIA_AUTH_POLICY_FILE: policyFile,
      },
      { logger: logs.logger },
    );
    servers.push(server);
    const as = (c: { cert: string; key: string }) =>
      createCuriaClient(EchoDefinition, channel(ports.grpcPort, { certFile: c.cert, keyFile: c.key }), {
        retryMaxAttempts: 1,
      });
    await expect(as(client).unary({ text: 'hi', studyId: 'study-0042' })).resolves.toMatchObject({
      text: 'hi',
    });
    await expect(as(client).mutate({})).rejects.toThrow(
      /PERMISSION_DENIED: .*curia-gateway may not call \/curia\.test\.v1\.EchoService\/Mutate.*\[admin\]/,
    );
    await expect(as(admin).mutate({ text: 'w' })).resolves.toMatchObject({ text: 'w' });
    await expect(as(stranger).unary({})).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
    // A caller cannot claim an identity by sending the internal metadata key itself.
    await expect(
      as(stranger).mutate({}, { metadata: Metadata({ 'x-curia-peer-identity': 'ops-admin' }) }),
    ).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
    const health = createCuriaClient(
      HealthDefinition,
      channel(ports.grpcPort, { certFile: stranger.cert, keyFile: stranger.key }),
    );
    await expect(health.check({ service: '' })).resolves.toMatchObject({ status: 1 });

    const audit = logs.lines().filter((l) => l.msg === 'audit');
    expect(audit.map((l) => l.audit)).toEqual([
      expect.objectContaining({
        caller: 'curia-gateway',
        via: 'mtls',
        method: '/curia.test.v1.EchoService/Unary',
        status: 'OK',
        study: studyRef('study-0042'),
      }),
      expect.objectContaining({
        caller: 'curia-gateway',
        method: '/curia.test.v1.EchoService/Mutate',
        status: 'PERMISSION_DENIED',
      }),
      expect.objectContaining({ caller: 'ops-admin', status: 'OK' }),
      expect.objectContaining({ caller: 'stranger', status: 'PERMISSION_DENIED' }),
      expect.objectContaining({ caller: 'stranger', status: 'PERMISSION_DENIED' }),
    ]);
    expect(audit.every((l) => typeof (l.audit as { ms: unknown }).ms === 'number')).toBe(true);
    expect(JSON.stringify(logs.lines())).not.toContain('study-0042');
  });

  it('bearer JWTs: verified against the JWKS, issuer, audience and expiry; roles from the claim', async () => {
    const issuer = await createTestIssuer(join(dir, 'jwks.json'));
    const { server, ports } = await startEchoServer({
      CURIA_TLS_CERT_FILE: serverCert.cert,
      CURIA_TLS_KEY_FILE: serverCert.key,
      CURIA_AUTH: 'on',
      CURIA_AUTH_JWKS_FILE: issuer.jwksFile,
      CURIA_AUTH_JWT_ISSUER: issuer.issuer,
      CURIA_AUTH_JWT_AUDIENCE: issuer.audience,
      CURIA_AUTH_POLICY_FILE: policyFile,
    });
    servers.push(server);
    const echo = createCuriaClient(EchoDefinition, channel(ports.grpcPort, {}), { retryMaxAttempts: 1 });
    const bearer = (t: string) => ({ metadata: Metadata({ authorization: `Bearer ${t}` }) });
    await expect(echo.unary({})).rejects.toThrow(/UNAUTHENTICATED: .*client certificate.*Bearer/);
    await expect(
      echo.unary({ text: 'r' }, bearer(await issuer.token('alice', ['client']))),
    ).resolves.toMatchObject({ text: 'r' });
    await expect(echo.mutate({}, bearer(await issuer.token('alice', ['client'])))).rejects.toMatchObject({
      code: Status.PERMISSION_DENIED,
    });
    await expect(
      echo.mutate({ text: 'w' }, bearer(await issuer.token('root', ['admin']))),
    ).resolves.toMatchObject({ text: 'w' });
    await expect(
      echo.unary({}, bearer(await issuer.token('alice', ['client'], { expiresIn: 'expired' }))),
    ).rejects.toThrow(/UNAUTHENTICATED: .*expired/);
    await expect(
      echo.unary({}, bearer(await issuer.token('alice', ['client'], { audience: 'other' }))),
    ).rejects.toThrow(/UNAUTHENTICATED: .*'aud'/);
    const stranger = await createTestIssuer(join(dir, 'other-jwks.json'));
    await expect(echo.unary({}, bearer(await stranger.token('mallory', ['admin'])))).rejects.toMatchObject({
      code: Status.UNAUTHENTICATED,
    });
    await expect(echo.unary({}, bearer('not-a-jwt'))).rejects.toMatchObject({ code: Status.UNAUTHENTICATED });
    // Health needs no credentials (TLS still applies).
    await expect(
      createCuriaClient(HealthDefinition, channel(ports.grpcPort, {})).check({ service: '' }),
    ).resolves.toMatchObject({ status: 1 });
  });

  it('a rewritten JWKS file is picked up without a restart (signing-key rotation)', async () => {
    const jwks = join(dir, 'rotating-jwks.json');
    const before = await createTestIssuer(jwks);
    const { server, ports } = await startEchoServer({
      CURIA_AUTH: 'on',
      CURIA_AUTH_JWKS_FILE: jwks,
      CURIA_AUTH_JWT_ISSUER: before.issuer,
      CURIA_AUTH_JWT_AUDIENCE: before.audience,
    });
    servers.push(server);
    const echo = createCuriaClient(EchoDefinition, channel(ports.grpcPort), { retryMaxAttempts: 1 });
    const call = async (issuer: Awaited<ReturnType<typeof createTestIssuer>>) =>
      echo.unary(
        { text: 'k' },
        { metadata: Metadata({ authorization: `Bearer ${await issuer.token('a', ['client'])}` }) },
      );
    await expect(call(before)).resolves.toMatchObject({ text: 'k' });
    const after = await createTestIssuer(jwks); // a new key written over the file
    await new Promise((r) => setTimeout(r, 1100));
    await expect(call(after)).resolves.toMatchObject({ text: 'k' });
    await expect(call(before)).rejects.toThrow(/UNAUTHENTICATED/);
  });

  it('a JWKS URL that cannot be fetched → UNAVAILABLE with a retry hint, not UNAUTHENTICATED', async () => {
    const issuer = await createTestIssuer(join(dir, 'jwks-url.json'));
    const { server, ports } = await startEchoServer({
      CURIA_AUTH: 'on',
      CURIA_AUTH_JWKS_URL: 'http://127.0.0.1:1/jwks.json', // nothing listens on port 1
      CURIA_AUTH_JWT_ISSUER: issuer.issuer,
      CURIA_AUTH_JWT_AUDIENCE: issuer.audience,
    });
    servers.push(server);
    const echo = createCuriaClient(EchoDefinition, channel(ports.grpcPort), { retryMaxAttempts: 1 });
    const token = await issuer.token('alice', ['client']);
    await expect(
      echo.unary({}, { metadata: Metadata({ authorization: `Bearer ${token}` }) }),
    ).rejects.toThrow(/UNAVAILABLE: .*could not be fetched/);
  });

  it('optional client certificates (an edge): only CA-signed ones identify; none → UNAUTHENTICATED', async () => {
    const admin = pki.issue('edge-admin');
    const forger = createTestPki(dir, 'forger-ca').issue('edge-admin-forged');
    // The forged certificate claims the admin's name but another CA signed it.
    const forged = { cert: join(dir, 'forged.pem'), key: forger.key };
    writeFileSync(forged.cert, readFileSync(forger.cert));
    const { server, ports } = await startEchoServer({
      CURIA_TLS_CERT_FILE: serverCert.cert,
      CURIA_TLS_KEY_FILE: serverCert.key,
      CURIA_TLS_CLIENT_CA_FILE: pki.ca,
      CURIA_TLS_CLIENT_CERT: 'optional',
      CURIA_AUTH: 'on',
      CURIA_AUTH_CERT_ROLES: 'edge-admin=admin;edge-admin-forged=admin',
      CURIA_AUTH_POLICY_FILE: policyFile,
    });
    servers.push(server);
    const call = (tls: { certFile?: string; keyFile?: string }) =>
      createCuriaClient(EchoDefinition, channel(ports.grpcPort, tls), { retryMaxAttempts: 1 }).mutate({
        text: 'x',
      });
    await expect(call({ certFile: admin.cert, keyFile: admin.key })).resolves.toMatchObject({ text: 'x' });
    await expect(call({})).rejects.toMatchObject({ code: Status.UNAUTHENTICATED });
    await expect(call({ certFile: forged.cert, keyFile: forged.key })).rejects.toMatchObject({
      code: Status.UNAUTHENTICATED,
    });
  });

  it('local mode (CURIA_AUTH=off) checks nothing and GetInfo-level security says so', async () => {
    const { server, ports } = await startEchoServer({});
    servers.push(server);
    await expect(
      createCuriaClient(EchoDefinition, channel(ports.grpcPort)).mutate({ text: 'm' }),
    ).resolves.toMatchObject({ text: 'm' });
    const { securityInfo } = await import('./caller-auth.js');
    const info = securityInfo(server.options.env);
    expect(info).toMatchObject({ auth: 'off', tls: false, identitySources: [] });
    expect(info.summary).toMatch(/^local mode: no authentication/);
  });

  it('audits a response stream the caller abandons as CANCELLED, and a finished one as OK', async () => {
    const logs = captureLogs();
    const { server, ports } = await startEchoServer({ CURIA_LOG_LEVEL: 'info' }, { logger: logs.logger });
    servers.push(server);
    const echo = createCuriaClient(EchoDefinition, channel(ports.grpcPort));
    for await (const m of echo.serverStream({ count: 50, delayMs: 20 })) if (m.text === '1') break;
    let n = 0;
    for await (const _ of echo.serverStream({ count: 2 })) n++;
    expect(n).toBe(2);
    await new Promise((r) => setTimeout(r, 200));
    const statuses = logs
      .lines()
      .filter((l) => l.msg === 'audit')
      .map((l) => (l.audit as { status: string; caller: string }).status);
    expect(statuses.sort()).toEqual(['CANCELLED', 'OK']);
  });

  it('refuses to start with auth on and no way to identify callers', async () => {
    await expect(startEchoServer({ CURIA_AUTH: 'on' })).rejects.toThrow(
      /CURIA_AUTH_JWKS_FILE.*CURIA_AUTH_CERT_ROLES/,
    );
  });
});

describe('certificate rotation', () => {
  it('serves a renewed certificate to new connections without a restart', async () => {
    const next = createTestPki(dir, 'next-ca');
    const renewed = next.issue('echo-renewed');
    const live = { cert: join(dir, 'live.pem'), key: join(dir, 'live.key') };
    copyFileSync(serverCert.cert, live.cert);
    copyFileSync(serverCert.key, live.key);
    const { server, ports } = await startEchoServer({
      CURIA_TLS_CERT_FILE: live.cert,
      CURIA_TLS_KEY_FILE: live.key,
      CURIA_TLS_RELOAD_MS: '200',
    });
    servers.push(server);
    const trustsNext = () =>
      createCuriaClient(EchoDefinition, channel(ports.grpcPort, { caFile: next.ca }), {
        retryMaxAttempts: 1,
      }).unary({}, { deadline: new Date(Date.now() + 2000) });
    await expect(trustsNext()).rejects.toMatchObject({ code: Status.UNAVAILABLE });
    writeFileSync(live.cert, readFileSync(renewed.cert));
    writeFileSync(live.key, readFileSync(renewed.key));
    await new Promise((r) => setTimeout(r, 700));
    await expect(trustsNext()).resolves.toBeDefined();
  });
});

describe('study ids', () => {
  it('refuses ids shaped like DICOM UIDs or record numbers; hashes the rest with the key', () => {
    expect(() => checkStudyId('1.2.840.113619.2.55.3.604688119')).toThrow(/DICOM UID or a record number/);
    expect(() => checkStudyId('00123456')).toThrow(/record number/);
    expect(() => checkStudyId('study-7f3a')).not.toThrow();
    expect(() => checkStudyId('ct-2024.01')).not.toThrow();
    expect(studyRef('study-7f3a')).toMatch(/^s-[0-9a-f]{16}$/);
    expect(studyRef('study-7f3a')).toBe(studyRef('study-7f3a'));
    expect(studyRef('study-7f3b')).not.toBe(studyRef('study-7f3a'));
    expect(studyRef('')).toBe('');
  });
});
