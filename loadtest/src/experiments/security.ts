/**
 * Experiment 7 — security: the throughput cost of TLS + authentication (issue 17). The capacity
 * experiment's open-loop sweeps for Embed (one replica) and AnalyzeStudy (gateway → preprocess,
 * embed, heads), in three configurations:
 *
 * - plain: plaintext, `CURIA_AUTH=off` (local mode, today's default);
 * - mTLS: every hop mutual TLS (each service its own certificate, presented to the stages it
 *   dials), `CURIA_AUTH=on` with certificate roles, the generator presenting a `client`-role
 *   certificate;
 * - JWT (AnalyzeStudy only): as mTLS inside, but the gateway's client certificate optional and the
 *   generator sending `authorization: Bearer <jwt>` instead of a certificate.
 *
 * Whole sweeps alternate plain → secure → plain (→ JWT) so the machine's drift shows in the two
 * plain runs; ratios are secure ÷ the plain runs' mean, with the spread against each plain run.
 *
 *     node loadtest/dist/experiments/security.js [--quick]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ANALYSIS_SERVICES } from '@curia/cli';
import { createTestIssuer, createTestPki } from '@curia/kit/testing';

import { OutputTail, replicaAddress, withCluster, type ClusterOptions } from '../cluster.js';
import { RawClient, type RawClientOptions } from '../raw-client.js';
import { writeReport, type Check, type RunReport } from '../report.js';
import { analyzeScenario, embedScenario, type Scenario } from '../scenarios.js';
import { experimentArgs, nowIso, progress, SHARED_MACHINE_NOTE } from './common.js';
import { commonServedRate, findKnee, ratioTo, type Knee, type Step } from './steps.js';
import {
  capacitySweeps,
  clusterCpuSeconds,
  comparePanels,
  f2,
  sweep,
  sweepRow,
  sweepTable,
  warmUp,
  type SweepSpec,
} from './sweep.js';

const args = experimentArgs('security');
const startedAt = nowIso();
const { stepMs, embed, study } = capacitySweeps(args.quick);
/** A light step common to every sweep, where latency is compared (enough calls for a p99). */
const LIGHT = { embed: args.quick ? 6 : 4, study: 1 };
const tail = new OutputTail();
const runs: RunReport[] = [];

type Config = 'plain' | 'mtls' | 'jwt';
/** Chart legends (the labels are too long for a legend). */
const CONFIG_LEGEND: Record<Config, string> = { plain: 'plain', mtls: 'mTLS', jwt: 'JWT' };
const CONFIG_LABEL: Record<Config, string> = {
  plain: 'plain',
  mtls: 'mTLS+auth',
  jwt: 'JWT at the gateway+mTLS inside',
};

/** How a cluster is started and how the generator connects, per configuration. */
interface Setup {
  readonly cluster: Omit<ClusterOptions, 'only'>;
  readonly client: RawClientOptions;
}

const work = mkdtempSync(join(tmpdir(), 'curia-loadtest-security-'));
const pki = createTestPki(work);
const issuer = await createTestIssuer(join(work, 'jwks.json'));
const auditKey = join(work, 'audit.key');
writeFileSync(auditKey, randomBytes(32));
const loadgen = pki.issue('curia-loadtest');
const launcher = pki.issue('curia-launcher');
const own = Object.fromEntries(
  ANALYSIS_SERVICES.map((svc) => {
    const c = pki.issue(`curia-${svc}`);
    return [svc, { CURIA_TLS_CERT_FILE: c.cert, CURIA_TLS_KEY_FILE: c.key }];
  }),
);
const secureCluster = (gatewayEnv: Record<string, string> = {}): Setup['cluster'] => ({
  tls: { caFile: pki.ca, certFile: launcher.cert, keyFile: launcher.key },
  env: {
    CURIA_TLS_CLIENT_CA_FILE: pki.ca,
    CURIA_UPSTREAM_TLS_CA_FILE: pki.ca,
    CURIA_AUTH: 'on',
    CURIA_AUTH_CERT_ROLES: 'curia-gateway=client;curia-loadtest=client',
    CURIA_AUTH_JWKS_FILE: issuer.jwksFile,
    CURIA_AUTH_JWT_ISSUER: issuer.issuer,
    CURIA_AUTH_JWT_AUDIENCE: issuer.audience,
    CURIA_AUDIT_KEY_FILE: auditKey,
  },
  serviceEnv: { ...own, gateway: { ...own.gateway, ...gatewayEnv } },
});
const SETUPS: Record<Config, Setup> = {
  plain: { cluster: {}, client: {} },
  mtls: {
    cluster: secureCluster(),
    client: { tls: { caFile: pki.ca, certFile: loadgen.cert, keyFile: loadgen.key } },
  },
  jwt: {
    cluster: secureCluster({ CURIA_TLS_CLIENT_CERT: 'optional' }),
    client: {
      tls: { caFile: pki.ca },
      metadata: {
        authorization: `Bearer ${await issuer.token('loadtest@radiology', ['client'], { expiresIn: '4h' })}`,
      },
    },
  },
};

/** One configuration's sweep of one scenario. */
interface SweepRun {
  readonly label: string;
  readonly legend: string;
  readonly config: Config;
  readonly steps: Step[];
  readonly knee: Knee;
}

async function runSweep(
  name: string,
  config: Config,
  n: number,
  services: readonly string[],
  entry: string,
  makeScenario: (client: RawClient) => Scenario,
  spec: SweepSpec,
): Promise<SweepRun> {
  const label = `${name} ${CONFIG_LABEL[config]}${config === 'plain' ? ` #${n}` : ''}`;
  progress(`${label}: starting ${services.join(', ')}`);
  const setup = SETUPS[config];
  const steps = await withCluster({ only: [...services], ...setup.cluster }, tail, async (c) => {
    const client = new RawClient(replicaAddress(c, entry), setup.client);
    try {
      const scenario = makeScenario(client);
      await warmUp(scenario, spec);
      return await sweep(label, scenario, spec, {
        stepMs,
        runs,
        serviceCpuSeconds: clusterCpuSeconds(c, services),
      });
    } catch (e) {
      progress(`${label} failed; recent service output:\n${tail.text()}`);
      throw e;
    } finally {
      client.close();
    }
  });
  const legend = `${CONFIG_LEGEND[config]}${config === 'plain' ? ` ${n}` : ''}`;
  return { label, legend, config, steps, knee: findKnee(steps) };
}

/** Per-configuration rows and secure/plain ratios of one scenario. */
function summarise(name: string, unit: string, sweeps: readonly SweepRun[], light: number) {
  const plain = sweeps.filter((s) => s.config === 'plain');
  const common = commonServedRate(sweeps.map((s) => s.steps));
  const rows = sweeps.map((s) => sweepRow(s.label, s.steps, s.knee, light, common));
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const plainRows = rows.filter((_, i) => sweeps[i]!.config === 'plain');
  const ratios = sweeps
    .filter((s) => s.config !== 'plain')
    .map((s) => {
      const row = rows[sweeps.indexOf(s)]!;
      return {
        config: s.config,
        knee: ratioTo(
          plain.map((p) => p.knee.kneeOffered),
          s.knee.kneeOffered,
        ),
        maxAchieved: ratioTo(
          plain.map((p) => p.knee.maxAchieved),
          s.knee.maxAchieved,
        ),
        lightP50: row.lightP50 / mean(plainRows.map((r) => r.lightP50)),
        serviceCpuPerCall: row.serviceCpuMsPerCall / mean(plainRows.map((r) => r.serviceCpuMsPerCall)),
      };
    });
  return { name, unit, light, common, rows, ratios };
}
type Summary = ReturnType<typeof summarise>;

function ratioNotes(s: Summary): string[] {
  return s.ratios.map(
    (r) =>
      `${s.name}, ${CONFIG_LABEL[r.config]} ÷ plain: knee ${f2(r.knee.ratio)} (${f2(r.knee.low)}–${f2(r.knee.high)} against each plain run), max achieved ${f2(r.maxAchieved.ratio)} (${f2(r.maxAchieved.low)}–${f2(r.maxAchieved.high)}), p50 at ${s.light} ${s.unit}/s ${f2(r.lightP50)}, service CPU per call at ${s.common} ${s.unit}/s ${f2(r.serviceCpuPerCall)}.`,
  );
}

/** A Markdown table of every run of a scenario. */
function runTable(s: Summary): string {
  return sweepTable(`${s.name} per configuration`, s.unit, s.light, s.common, s.rows);
}

let embedSweeps: SweepRun[];
let studySweeps: SweepRun[];
try {
  const embedRun = (config: Config, n = 0) =>
    runSweep('Embed', config, n, ['embed'], 'embed', (c) => embedScenario(c), embed);
  const studyRun = (config: Config, n = 0) =>
    runSweep('AnalyzeStudy', config, n, ANALYSIS_SERVICES, 'gateway', (c) => analyzeScenario(c), study);
  embedSweeps = [await embedRun('plain', 1), await embedRun('mtls'), await embedRun('plain', 2)];
  studySweeps = [
    await studyRun('plain', 1),
    await studyRun('mtls'),
    await studyRun('plain', 2),
    await studyRun('jwt'),
  ];
} finally {
  rmSync(work, { recursive: true, force: true });
}

const embedSummary = summarise('Embed', 'slice', embedSweeps, LIGHT.embed);
const studySummary = summarise('AnalyzeStudy', 'study', studySweeps, LIGHT.study);

const servedCheck = (s: readonly SweepRun[], name: string): Check => ({
  name: `${name}: every configuration served its lightest step (credentials accepted on every hop)`,
  pass: s.every((x) => Number.isFinite(x.knee.kneeOffered)),
  detail: s
    .map((x) => `${x.label}: knee ${x.knee.kneeOffered}/s, max ${x.knee.maxAchieved.toFixed(2)}/s`)
    .join('; '),
});
const ratio = (s: Summary, config: Config) => s.ratios.find((r) => r.config === config);

const plainDrift = (s: readonly SweepRun[]) => {
  const [p1, p2] = s.filter((x) => x.config === 'plain');
  return p1 && p2 ? p2.knee.maxAchieved / p1.knee.maxAchieved : Number.NaN;
};
function noiseNote(embedRuns: readonly SweepRun[], studyRuns: readonly SweepRun[]): string {
  return `Noise floor: the same plaintext configuration, run twice a few minutes apart, gave max achieved plain #2 ÷ plain #1 = ${f2(plainDrift(embedRuns))} (Embed) and ${f2(plainDrift(studyRuns))} (AnalyzeStudy). A secure ÷ plain ratio closer to 1 than that cannot be told from the machine's drift; CPU per call (which queueing behind other processes inflates far less than latency or throughput) is the steadier measure of the cost.`;
}

const written = writeReport(args.out, {
  experiment: 'security',
  title: 'Experiment 7 — security: throughput cost of TLS + authentication (Embed, AnalyzeStudy)',
  startedAt,
  finishedAt: nowIso(),
  config: {
    stepMs,
    embedRates: embed.rates,
    studyRates: study.rates,
    lightStep: LIGHT,
    order: {
      embed: embedSweeps.map((s) => s.label),
      analyzeStudy: studySweeps.map((s) => s.label),
    },
    plain: 'plaintext, CURIA_AUTH=off (local mode)',
    mtls: 'every service its own certificate (CURIA_TLS_CERT_FILE/KEY_FILE), CURIA_TLS_CLIENT_CA_FILE (client certificates required), CURIA_UPSTREAM_TLS_CA_FILE (callers dial stages with TLS, presenting their own certificate), CURIA_AUTH=on, CURIA_AUTH_CERT_ROLES curia-gateway=client;curia-loadtest=client, CURIA_AUDIT_KEY_FILE; the generator presents curia-loadtest (role client)',
    jwt: 'as mTLS, but the gateway has CURIA_TLS_CLIENT_CERT=optional and the generator sends no certificate, only authorization: Bearer <ES256 JWT, roles [client]> verified against a JWKS file',
    keys: 'P-256 (ECDSA) certificates from a throwaway CA (createTestPki), ES256 JWT (createTestIssuer)',
    logLevel:
      'warn in every configuration (the per-rpc audit line is logged at info, so it is built but not written)',
  },
  runs,
  checks: [servedCheck(embedSweeps, 'Embed'), servedCheck(studySweeps, 'AnalyzeStudy')],
  notes: [
    SHARED_MACHINE_NOTE,
    ...(args.quick
      ? [
          'Run with --quick (6-s steps, 3 Embed and 2 AnalyzeStudy rates): a look, not a measurement of the knee.',
        ]
      : []),
    'Same open-loop sweep and knee rule as experiment 1 (capacity): the knee is the last step served (every call OK, p90 ≤ 3× the lightest step). Each configuration runs on its own freshly started cluster; whole sweeps alternate plain → secure → plain (→ JWT), so the two plain runs show how much the shared machine drifted in between. A ratio is secure ÷ mean of the plain runs; the range in brackets is secure ÷ each plain run.',
    'CPU per call: process_cpu_seconds_total of every service (scraped from /metrics, which stays plaintext HTTP) and the generator’s own process.cpuUsage(), over the whole step including warm-up and drain, divided by its OK calls, at the highest rate every run of the scenario served.',
    ...ratioNotes(embedSummary),
    ...ratioNotes(studySummary),
    noiseNote(embedSweeps, studySweeps),
  ],
  charts: [
    { file: 'embed-security.png', panels: comparePanels('Embed', 'slice', embedSweeps) },
    { file: 'analyze-security.png', panels: comparePanels('AnalyzeStudy', 'study', studySweeps) },
  ],
  summary: {
    ...Object.fromEntries(
      [...embedSummary.rows, ...studySummary.rows].flatMap((r) => [
        [`${r.run}: knee (offered/s)`, r.kneeOffered],
        [`${r.run}: max achieved (/s)`, r.maxAchieved],
      ]),
    ),
    'Embed plain #2 ÷ plain #1, max achieved (the noise floor)': plainDrift(embedSweeps),
    'AnalyzeStudy plain #2 ÷ plain #1, max achieved (the noise floor)': plainDrift(studySweeps),
    'Embed mTLS+auth ÷ plain, knee': ratio(embedSummary, 'mtls')?.knee.ratio,
    'Embed mTLS+auth ÷ plain, max achieved': ratio(embedSummary, 'mtls')?.maxAchieved.ratio,
    'Embed mTLS+auth ÷ plain, service CPU per call': ratio(embedSummary, 'mtls')?.serviceCpuPerCall,
    'AnalyzeStudy mTLS+auth ÷ plain, knee': ratio(studySummary, 'mtls')?.knee.ratio,
    'AnalyzeStudy mTLS+auth ÷ plain, max achieved': ratio(studySummary, 'mtls')?.maxAchieved.ratio,
    'AnalyzeStudy mTLS+auth ÷ plain, service CPU per call': ratio(studySummary, 'mtls')?.serviceCpuPerCall,
    'AnalyzeStudy JWT ÷ plain, knee': ratio(studySummary, 'jwt')?.knee.ratio,
    'AnalyzeStudy JWT ÷ plain, max achieved': ratio(studySummary, 'jwt')?.maxAchieved.ratio,
    'AnalyzeStudy JWT ÷ plain, service CPU per call': ratio(studySummary, 'jwt')?.serviceCpuPerCall,
  },
});
const md = written.replace('## Runs', `${runTable(embedSummary)}\n${runTable(studySummary)}\n## Runs`);
writeFileSync(join(args.out, 'report.md'), md);
process.stdout.write(md);
