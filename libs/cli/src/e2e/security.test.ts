import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  GatewayServiceBulkClientDefinition,
  analyzeStudyStart,
  collectAnalysis,
  common,
  createCuriaChannel,
  createCuriaClient,
  headFitRequests,
  heads,
  Status,
  studyFiles,
  studyUploadRequests,
  type Channel,
  type ClientTls,
  type CuriaClientOptions,
} from '@curia/client';
import { createTestIssuer, createTestPki, type IssuedCert, type TestIssuer } from '@curia/kit/testing';
import { generatePhantom, phantomToNifti } from '@curia/phantom';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LocalCluster } from '../cluster/launcher.js';
import { rejectsWith } from './rejects-with.js';

/**
 * The cluster as the production values run it: every hop mutual TLS (each service presents its own
 * certificate to the stages it calls), authentication on (client certificates and bearer JWTs),
 * per-method roles, and an audit line per rpc carrying the keyed hash of the study id only.
 */
describe('the cluster with mutual TLS on every hop and authentication on', () => {
  const STUDY = 'sec-e2e-study-5f2c';
  const PATIENT_PATH = 'DOE_JOHN_19700101';
  const lines: string[] = [];
  const channels: Channel[] = [];
  let work: string;
  let cluster: LocalCluster;
  let ca: string;
  let app: IssuedCert;
  let admin: IssuedCert;
  let issuer: TestIssuer;
  let study: string;

  const channel = (service: string, tls?: Partial<ClientTls>): Channel => {
    const c = createCuriaChannel(cluster.target(service), tls ? { tls: { caFile: ca, ...tls } } : {});
    channels.push(c);
    return c;
  };
  const withCert = (c: IssuedCert): Partial<ClientTls> => ({ certFile: c.cert, keyFile: c.key });
  const once: CuriaClientOptions = { retryMaxAttempts: 1 };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'curia-e2e-sec-'));
    const pki = createTestPki(work);
    ca = pki.ca;
    app = pki.issue('radiology-app');
    admin = pki.issue('ops-admin');
    const launcher = pki.issue('curia-launcher');
    issuer = await createTestIssuer(join(work, 'jwks.json'));
    const auditKey = join(work, 'audit.key');
    await writeFile(auditKey, randomBytes(32));
    study = join(work, 'study.nii.gz');
    await writeFile(
      study,
      phantomToNifti(generatePhantom({ size: [64, 64, 12], seed: 17 }), { gzip: true }).image,
    );
    const own = (svc: string, extra: Record<string, string> = {}) => {
      const c = pki.issue(`curia-${svc}`);
      return { CURIA_TLS_CERT_FILE: c.cert, CURIA_TLS_KEY_FILE: c.key, ...extra };
    };
    cluster = await LocalCluster.start({
      ports: 'dynamic',
      only: ['preprocess', 'embed', 'heads', 'gateway'],
      logLevel: 'info',
      tls: { caFile: ca, certFile: launcher.cert, keyFile: launcher.key },
      env: {
        CURIA_HEADS_DIR: join(work, 'heads'),
        CURIA_SHUTDOWN_GRACE_MS: '2000',
        CURIA_PREPROCESS_ALLOWED_ROOTS: work,
        CURIA_TLS_CLIENT_CA_FILE: ca,
        CURIA_UPSTREAM_TLS_CA_FILE: ca,
        CURIA_AUTH: 'on',
        CURIA_AUTH_CERT_ROLES: 'curia-gateway=client;radiology-app=client;ops-admin=admin',
        CURIA_AUTH_JWKS_FILE: issuer.jwksFile,
        CURIA_AUTH_JWT_ISSUER: issuer.issuer,
        CURIA_AUTH_JWT_AUDIENCE: issuer.audience,
        CURIA_AUDIT_KEY_FILE: auditKey,
      },
      serviceEnv: {
        preprocess: own('preprocess'),
        embed: own('embed'),
        heads: own('heads'),
        // The edge: callers may bring a bearer token instead of a client certificate.
        gateway: own('gateway', { CURIA_TLS_CLIENT_CERT: 'optional' }),
      },
      onOutput: (who, line) => lines.push(`[${who}] ${line}`),
    });
  }, 240_000);

  afterAll(async () => {
    for (const c of channels) c.close();
    await cluster?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  const analyse = async (c: Channel, options: CuriaClientOptions = {}, studyId = STUDY) => {
    const { files, format } = await studyFiles(study);
    return collectAnalysis(
      createCuriaClient(GatewayServiceBulkClientDefinition, c, options).analyzeStudy(
        studyUploadRequests(analyzeStudyStart(studyId, format, { embeddingOutputs: [CLS] }), files),
        { deadline: 120_000 },
      ),
    );
  };

  it('a client certificate with the client role analyses a study through every mutual-TLS hop', async () => {
    const r = await analyse(channel('gateway', withCert(app)));
    expect(r.embeddings.length).toBeGreaterThan(0);
    const { info } = await createCuriaClient(
      GatewayServiceBulkClientDefinition,
      channel('gateway', withCert(app)),
    ).getInfo({});
    expect(info?.security).toMatchObject({ tls: true, mutualTls: false, upstreamTls: true, auth: 'on' });
    expect(info?.security?.identitySources).toEqual(['mtls', 'jwt']);
  }, 180_000);

  it('a bearer token with the client role works at the edge without a certificate', async () => {
    const token = await issuer.token('alice@radiology', ['client']);
    const r = await analyse(channel('gateway', {}), { bearerToken: token });
    expect(r.embeddings.length).toBeGreaterThan(0);
  }, 180_000);

  it('no credentials → UNAUTHENTICATED; a plaintext client and a certificate-less stage call fail', async () => {
    const gw = createCuriaClient(GatewayServiceBulkClientDefinition, channel('gateway', {}), once);
    await rejectsWith(gw.getInfo({}), Status.UNAUTHENTICATED, /needs credentials/);
    const plain = createCuriaClient(GatewayServiceBulkClientDefinition, channel('gateway'), once);
    await rejectsWith(plain.getInfo({}, { deadline: 3000 }), Status.UNAVAILABLE, /.*/);
    // Inner stages require a client certificate at the TLS handshake.
    const heads0 = createCuriaClient(heads.HeadsServiceDefinition, channel('heads', {}), once);
    await rejectsWith(heads0.getInfo({}, { deadline: 3000 }), Status.UNAVAILABLE, /.*/);
  });

  it('the client role may not Fit or promote; an admin Fit changes the default version only after PromoteHead', async () => {
    const fit = (c: Channel, options: CuriaClientOptions = {}) =>
      createCuriaClient(heads.HeadsServiceDefinition, c, { ...once, ...options }).fit(
        headFitRequests(
          {
            head: 'sec-half',
            kind: common.HeadKind.LOGISTIC,
            task: common.HeadTask.CLASSIFICATION,
            feature: CLS,
            labelNames: ['a', 'b'],
            options: { folds: 2, seed: 1 },
            demo: true,
          },
          Array.from({ length: 8 }, (_, i) => ({
            features: feature([i % 2, 1 - (i % 2), i / 8, 0.5]),
            label: { $case: 'classIndex' as const, value: i % 2 },
          })),
        ),
      );
    const asApp = createCuriaClient(heads.HeadsServiceDefinition, channel('heads', withCert(app)), once);
    const asAdmin = createCuriaClient(heads.HeadsServiceDefinition, channel('heads', withCert(admin)), once);
    const predictedVersion = async () =>
      (
        await asApp.predict({
          head: 'sec-half',
          slices: [{ sliceId: 0, features: [{ requestIndex: 0, tensor: feature([1, 0, 0.5, 0.5]) }] }],
        })
      ).head?.version;

    await rejectsWith(
      fit(channel('heads', withCert(app))),
      Status.PERMISSION_DENIED,
      /radiology-app may not call \/curia\.heads\.v1\.HeadsService\/Fit/,
    );
    const bearerClient = await issuer.token('alice@radiology', ['client']);
    await rejectsWith(
      fit(channel('heads', withCert(app)), { bearerToken: bearerClient }),
      Status.PERMISSION_DENIED,
      /alice@radiology may not call/,
    );
    const v1 = await fit(channel('heads', withCert(admin)));
    expect(v1.head?.name).toBe('sec-half');
    expect(await predictedVersion()).toBe(v1.head?.version);
    // A second admin Fit adds a version; what "sec-half" means does not change …
    const v2 = await fit(channel('heads', withCert(admin)));
    expect(v2.head?.version).not.toBe(v1.head?.version);
    expect(await predictedVersion()).toBe(v1.head?.version);
    // … until an admin promotes it (the client role may not).
    await rejectsWith(
      asApp.promoteHead({ name: 'sec-half', version: v2.head!.version }),
      Status.PERMISSION_DENIED,
      /PromoteHead.*\[admin\]/,
    );
    expect(await predictedVersion()).toBe(v1.head?.version);
    await asAdmin.promoteHead({ name: 'sec-half', version: v2.head!.version });
    expect(await predictedVersion()).toBe(v2.head?.version);
  });

  it('refuses a study id shaped like a DICOM UID; an unreadable ref names no path', async () => {
    await rejectsWith(
      analyse(channel('gateway', withCert(app)), once, '1.2.840.113619.2.55.3.6046'),
      Status.INVALID_ARGUMENT,
      /DICOM UID/,
    );
    const gw = createCuriaClient(GatewayServiceBulkClientDefinition, channel('gateway', withCert(app)), once);
    const refCall = collectAnalysis(
      gw.analyzeStudy(
        // eslint-disable-next-line @typescript-eslint/require-await -- one message, no upload
        (async function* () {
          yield {
            msg: {
              $case: 'start' as const,
              value: {
                ...analyzeStudyStart(STUDY, common.VolumeFormat.NIFTI, { embeddingOutputs: [CLS] }),
                source: {
                  $case: 'ref' as const,
                  value: { uri: `file://${join(work, PATIENT_PATH, 'ct.nii.gz')}` },
                },
              },
            },
          };
        })(),
        { deadline: 30_000 },
      ),
    );
    await rejectsWith(refCall, Status.NOT_FOUND, /not a readable file under the allowed roots/);
  });

  it('audit lines carry caller, method, status and the keyed study hash — never the raw id or a path', async () => {
    await new Promise((r) => setTimeout(r, 300)); // let the last lines arrive
    const audit = lines
      .map((l) => /^\[([\w-]+)\] (\{.*\})$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({
        who: m[1]!,
        rec: JSON.parse(m[2]!) as { msg?: string; audit?: Record<string, unknown> },
      }))
      .filter((x) => x.rec.msg === 'audit');
    const at = (who: string) => audit.filter((a) => a.who === who).map((a) => a.rec.audit!);
    const gwLines = at('gateway');
    expect(gwLines).toContainEqual(
      expect.objectContaining({
        caller: 'radiology-app',
        via: 'mtls',
        method: '/curia.gateway.v1.GatewayService/AnalyzeStudy',
        status: 'OK',
      }),
    );
    expect(gwLines.find((l) => l.caller === 'radiology-app')?.study).toMatch(/^s-[0-9a-f]{16}$/);
    // The backbone that answered, as name@version (the gateway and Embed agree on it).
    const model = gwLines.find((l) => l.caller === 'radiology-app')?.target as string;
    expect(model).toMatch(/^[\w.-]+@[\w.-]+$/);
    expect(at('embed')).toContainEqual(expect.objectContaining({ caller: 'curia-gateway', target: model }));
    expect(gwLines).toContainEqual(
      expect.objectContaining({ caller: 'alice@radiology', via: 'jwt', status: 'OK' }),
    );
    expect(gwLines).toContainEqual(
      expect.objectContaining({ caller: 'anonymous', status: 'UNAUTHENTICATED' }),
    );
    // Every stage saw the gateway's own certificate, and hashed the study id the same way.
    const hash = gwLines.find((l) => l.caller === 'radiology-app')!.study;
    expect(at('embed')).toContainEqual(
      expect.objectContaining({ caller: 'curia-gateway', via: 'mtls', status: 'OK', study: hash }),
    );
    expect(at('preprocess')).toContainEqual(
      expect.objectContaining({ caller: 'curia-gateway', study: hash }),
    );
    expect(at('heads')).toContainEqual(
      expect.objectContaining({
        caller: 'radiology-app',
        method: '/curia.heads.v1.HeadsService/Fit',
        status: 'PERMISSION_DENIED',
      }),
    );
    expect(at('heads')).toContainEqual(
      expect.objectContaining({
        caller: 'ops-admin',
        method: '/curia.heads.v1.HeadsService/Fit',
        status: 'OK',
      }),
    );
    expect(at('heads')).toContainEqual(
      expect.objectContaining({
        caller: 'ops-admin',
        method: '/curia.heads.v1.HeadsService/PromoteHead',
        status: 'OK',
      }),
    );
    expect(at('heads')).toContainEqual(
      expect.objectContaining({
        caller: 'radiology-app',
        target: expect.stringMatching(/^sec-half@/) as unknown,
      }),
    );
    const all = lines.join('\n');
    expect(all).not.toContain(STUDY);
    expect(all).not.toContain('1.2.840.113619');
    expect(all).not.toContain(PATIENT_PATH);
  });
});

const feature = (values: number[]): common.Tensor => ({
  dtype: common.DType.F32,
  shape: [values.length],
  data: new Uint8Array(new Float32Array(values).buffer),
});

const CLS: common.FeatureRequest = {
  kind: { $case: 'cls', value: { prenorm: false } },
  dtype: common.DType.F32,
};
