import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as proto from '@curia/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

import {
  ANALYSIS_SERVICES,
  calleesOf,
  catalogService,
  GATEWAY_STAGES,
  localStageTargets,
  localTarget,
  localTargetsOf,
  SERVICE_CATALOG,
  targetEnvOf,
  type Callee,
  type CatalogServiceName,
  type ServiceCatalogEntry,
} from './service-catalog.js';

/** The repository root (this file is libs/kit/src or libs/kit/dist). */
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

const NAMES: readonly string[] = SERVICE_CATALOG.map((s) => s.name);
const STAGES = GATEWAY_STAGES.map((s) => s.name);
/** calleesOf for any catalogued name (its static type narrows only for a literal name). */
const callees = (name: CatalogServiceName): readonly Callee<string>[] => calleesOf(name);
/** Per service, the names of the services it calls (its `calls`, as calleesOf resolves them). */
const CALLEES: ReadonlyMap<string, readonly string[]> = new Map(
  SERVICE_CATALOG.map((s) => [s.name, callees(s.name).map((c) => c.name)]),
);
/** The services that call `name`. */
const callersOf = (name: string): string[] => NAMES.filter((n) => CALLEES.get(n)?.includes(name));
/** Every service some service calls: the only keys a `stageTargets` may have. */
const CALLED = NAMES.filter((n) => callersOf(n).length > 0);

// ---------------------------------------------------------------------------------------------
// The checker: every file outside TypeScript that repeats a catalogue fact, read under `root`.
// Each check returns one line per disagreement, naming the file.
// ---------------------------------------------------------------------------------------------

type Problems = string[];
type Obj = Record<string, unknown>;

const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Reports `actual` ≠ `expected` as sets: what is missing and what is extra. */
function sameSet(out: Problems, where: string, actual: Iterable<string>, expected: Iterable<string>): void {
  const a = new Set(actual);
  const e = new Set(expected);
  const missing = [...e].filter((x) => !a.has(x));
  const extra = [...a].filter((x) => !e.has(x));
  if (missing.length || extra.length) {
    out.push(
      `${where}: ${missing.length ? `missing ${missing.join(', ')}` : ''}${missing.length && extra.length ? '; ' : ''}${
        extra.length ? `not in the catalogue ${extra.join(', ')}` : ''
      }`,
    );
  }
}

function same(out: Problems, where: string, actual: unknown, expected: unknown): void {
  if (actual !== expected)
    out.push(`${where}: ${JSON.stringify(actual)}, catalogue says ${JSON.stringify(expected)}`);
}

/**
 * helm/curia/values.yaml: one `services` entry per catalogued service with its ports and gRPC name, and
 * `stageTargets` with one key per callee on exactly the services that call others.
 */
function checkHelmValues(root: string): Problems {
  const out: Problems = [];
  const file = 'helm/curia/values.yaml';
  const services = obj(obj(parse(readFileSync(join(root, file), 'utf8'))).services);
  sameSet(out, `${file} services`, Object.keys(services), NAMES);
  for (const s of SERVICE_CATALOG) {
    const v = obj(services[s.name]);
    if (!(s.name in services)) continue;
    same(out, `${file} services.${s.name}.grpcPort`, v.grpcPort, s.grpcPort);
    same(out, `${file} services.${s.name}.metricsPort`, v.metricsPort, s.metricsPort);
    same(out, `${file} services.${s.name}.grpcService`, v.grpcService, s.grpcService);
    sameSet(
      out,
      `${file} services.${s.name}.stageTargets`,
      Object.keys(obj(v.stageTargets)),
      CALLEES.get(s.name) ?? [],
    );
  }
  if ('stageTargets' in obj(obj(parse(readFileSync(join(root, file), 'utf8'))).default))
    out.push(`${file} default.stageTargets: stage targets belong to the calling service`);
  return out;
}

/**
 * helm/curia/values.schema.json: the services it accepts; `stageTargets` keys limited to called services,
 * each caller accepting (and requiring) exactly its callees, every other service and `default` none.
 */
function checkHelmSchema(root: string): Problems {
  const out: Problems = [];
  const file = 'helm/curia/values.schema.json';
  const schema = obj(JSON.parse(readFileSync(join(root, file), 'utf8')));
  const definitions = obj(schema.definitions);
  const services = obj(obj(schema.properties).services);
  sameSet(out, `${file} services.properties`, Object.keys(obj(services.properties)), NAMES);
  sameSet(out, `${file} services.required`, arr(services.required).map(String), NAMES);
  const stageTargets = obj(definitions.stageTargets);
  sameSet(out, `${file} stageTargets.properties`, Object.keys(obj(stageTargets.properties)), CALLED);
  same(out, `${file} stageTargets.additionalProperties`, stageTargets.additionalProperties, false);
  same(
    out,
    `${file} definitions.notCaller rejects stageTargets`,
    obj(obj(definitions.notCaller).properties).stageTargets,
    false,
  );
  const allOf = (v: unknown) => arr(obj(v).allOf).map(obj);
  const rejectsTargets = (v: unknown) => allOf(v).some((e) => e.$ref === '#/definitions/notCaller');
  if (!rejectsTargets(obj(schema.properties).default))
    out.push(`${file} default: does not reject stageTargets (#/definitions/notCaller)`);
  for (const s of SERVICE_CATALOG) {
    const where = `${file} services.${s.name}`;
    const callees = CALLEES.get(s.name) ?? [];
    const entry = obj(services.properties)[s.name];
    if (entry === undefined) continue;
    const own = allOf(entry)
      .map((e) => obj(obj(e.properties).stageTargets))
      .find((t) => 'propertyNames' in t || 'required' in t);
    if (callees.length === 0) {
      if (!rejectsTargets(entry)) out.push(`${where}: calls nothing but does not reject stageTargets`);
      if (own) out.push(`${where}: calls nothing but accepts stageTargets`);
      continue;
    }
    if (rejectsTargets(entry)) out.push(`${where}: calls ${callees.join(', ')} but rejects stageTargets`);
    const names = arr(obj(own?.propertyNames).enum).map(String);
    sameSet(out, `${where} stageTargets propertyNames`, names, callees);
    sameSet(out, `${where} stageTargets required`, arr(own?.required).map(String), callees);
  }
  return out;
}

/**
 * k8s/base/curia.yaml (rendered from the chart): workloads, Services, probes; per service its callees'
 * `CURIA_<X>_TARGET`, NetworkPolicy egress to each callee's gRPC port and gRPC ingress from its callers only.
 */
function checkK8sBase(root: string): Problems {
  const out: Problems = [];
  const file = 'k8s/base/curia.yaml';
  const docs = parseAllDocuments(readFileSync(join(root, file), 'utf8')).map((d) => obj(d.toJS()));
  const named = (kind: string) =>
    new Map(
      docs
        .filter((d) => d.kind === kind)
        .map((d) => [String(obj(d.metadata).name).replace(/^curia-/, ''), d] as const),
    );
  const deployments = named('Deployment');
  const services = named('Service');
  sameSet(out, `${file} Deployments`, deployments.keys(), NAMES);
  sameSet(out, `${file} Services`, services.keys(), NAMES);
  for (const s of SERVICE_CATALOG) {
    const where = `${file} ${s.name}`;
    const svcPorts = new Map(
      arr(obj(services.get(s.name)?.spec).ports).map((p) => [obj(p).name, obj(p).port]),
    );
    if (services.has(s.name)) {
      same(out, `${where} Service port grpc`, svcPorts.get('grpc'), s.grpcPort);
      same(out, `${where} Service port metrics`, svcPorts.get('metrics'), s.metricsPort);
    }
    const deployment = deployments.get(s.name);
    if (!deployment) continue;
    const container = obj(arr(obj(obj(obj(deployment.spec).template).spec).containers)[0]);
    same(out, `${where} container args`, arr(container.args).join(' '), s.name);
    const ports = new Map(arr(container.ports).map((p) => [obj(p).name, obj(p).containerPort]));
    same(out, `${where} containerPort grpc`, ports.get('grpc'), s.grpcPort);
    same(out, `${where} containerPort metrics`, ports.get('metrics'), s.metricsPort);
    const env = new Map(arr(container.env).map((e) => [String(obj(e).name), obj(e).value]));
    same(out, `${where} CURIA_GRPC_PORT`, env.get('CURIA_GRPC_PORT'), String(s.grpcPort));
    same(out, `${where} CURIA_METRICS_PORT`, env.get('CURIA_METRICS_PORT'), String(s.metricsPort));
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      const grpc = obj(obj(container[probe]).grpc);
      same(out, `${where} ${probe} port`, grpc.port, s.grpcPort);
      same(out, `${where} ${probe} service`, grpc.service, s.grpcService);
    }
    const targets = [...env].filter(([k]) => /^CURIA_\w+_TARGET$/.test(k));
    sameSet(
      out,
      `${where} stage targets`,
      targets.map(([k, v]) => `${k}=${String(v)}`),
      callees(s.name).map((t) => `${t.targetEnv}=curia-${t.name}:${t.grpcPort}`),
    );
  }
  const policies = named('NetworkPolicy');
  /** The Curia components a rule's peers select (clients, Prometheus and DNS peers select none). */
  const components = (peers: unknown) =>
    arr(peers).flatMap((peer) => {
      const c = obj(obj(obj(peer).podSelector).matchLabels)['app.kubernetes.io/component'];
      return typeof c === 'string' ? [c] : [];
    });
  for (const s of SERVICE_CATALOG) {
    const where = `${file} NetworkPolicy curia-${s.name}`;
    const spec = obj(policies.get(s.name)?.spec);
    if (!policies.has(s.name)) {
      out.push(`${where}: missing`);
      continue;
    }
    const egress = arr(spec.egress).flatMap((rule) =>
      components(obj(rule).to).flatMap((c) => arr(obj(rule).ports).map((p) => `${c}:${String(obj(p).port)}`)),
    );
    sameSet(
      out,
      `${where} egress to callees`,
      egress,
      callees(s.name).map((c) => `${c.name}:${c.grpcPort}`),
    );
    const ingress = arr(spec.ingress)
      .filter((rule) => arr(obj(rule).ports).some((p) => obj(p).port === 'grpc'))
      .flatMap((rule) => components(obj(rule).from));
    sameSet(out, `${where} ingress (gRPC) from callers`, ingress, callersOf(s.name));
  }
  return out;
}

/** The rows of the markdown table whose header row starts with `header`, as trimmed cells. */
function markdownTable(text: string, header: RegExp): string[][] | null {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => header.test(l));
  if (start < 0) return null;
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .slice(1, line.endsWith('|') ? -1 : undefined)
        .split('|')
        .map((c) => c.trim()),
    );
  }
  return rows;
}

/** README.md: the service table (name, gRPC service, ports) and the stage-target row (variables, callers → callees). */
function checkReadme(root: string): Problems {
  const out: Problems = [];
  const file = 'README.md';
  const text = readFileSync(join(root, file), 'utf8');
  const table = markdownTable(text, /^\| service \| package \| local gRPC \/ metrics \|/);
  if (!table) out.push(`${file}: no service table (| service | package | local gRPC / metrics | …)`);
  const rows = new Map((table ?? []).map((r) => [r[0] ?? '', r]));
  sameSet(out, `${file} service table`, rows.keys(), NAMES);
  for (const s of SERVICE_CATALOG) {
    const row = rows.get(s.name);
    if (!row) continue;
    same(out, `${file} service table ${s.name} package`, row[1], `\`${s.grpcService}\``);
    same(out, `${file} service table ${s.name} ports`, row[2], `${s.grpcPort} / ${s.metricsPort}`);
  }
  const targetRow = text.split('\n').find((l) => /^\| `CURIA_\w+_TARGET`/.test(l));
  if (!targetRow) {
    out.push(`${file}: no configuration row for the CURIA_<SERVICE>_TARGET variables`);
    return out;
  }
  const [variables = '', defaults = '', meaning = ''] = targetRow.slice(1).split('|');
  sameSet(
    out,
    `${file} configuration: stage targets`,
    variables.match(/CURIA_\w+_TARGET/g) ?? [],
    CALLED.map((n) => targetEnvOf(n)),
  );
  // Who calls whom, written `caller → callee, callee; …`.
  const written = new Map(
    [...meaning.matchAll(/\b([a-z]+) → ([a-z]+(?:, [a-z]+)*)/g)].map((m) => [
      m[1] ?? '',
      (m[2] ?? '').split(', '),
    ]),
  );
  const callers = NAMES.filter((n) => (CALLEES.get(n) ?? []).length > 0);
  sameSet(out, `${file} configuration: stage targets callers`, written.keys(), callers);
  for (const caller of callers) {
    if (written.has(caller))
      sameSet(
        out,
        `${file} configuration: ${caller} →`,
        written.get(caller) ?? [],
        CALLEES.get(caller) ?? [],
      );
  }
  // The default is written once for every callee, e.g. `127.0.0.1:5005x`.
  const pattern = /`([^`]+)`/.exec(defaults)?.[1] ?? '';
  const re = new RegExp(`^${pattern.replace(/[.]/g, '\\.').replace(/x/g, '\\d')}$`);
  for (const [env, target] of SERVICE_CATALOG.flatMap((s) => Object.entries(localTargetsOf(s.name)))) {
    if (!re.test(target))
      out.push(`${file} configuration: default '${pattern}' does not cover ${env}=${target}`);
  }
  return out;
}

/** Files that enumerate every service by name (shell `case` lists, alert regexes, chart descriptions). */
const NAME_LISTS: readonly { file: string; pattern: RegExp }[] = [
  { file: 'deploy/entrypoint.sh', pattern: /^\s*([a-z]+(?: \| [a-z]+)+)\) ;;$/gm },
  { file: 'deploy/entrypoint.sh', pattern: /expected one of ([a-z|]+),/g },
  { file: 'scripts/prometheus-alert-demo.sh', pattern: /^\s*([a-z]+(?: \| [a-z]+)+)\) ;;$/gm },
  { file: 'scripts/prometheus-alert-demo.sh', pattern: /must be one of ([a-z, ]+) \(got/g },
  { file: 'helm/curia/files/alerts.yaml', pattern: /curia-\(([a-z|]+)\)/g },
  { file: 'helm/curia/files/alerts.yaml', pattern: /curia_service=~"([a-z|]+)"/g },
  { file: 'helm/curia/Chart.yaml', pattern: /serving cluster \(([a-z, ]+)\)/g },
  { file: 'helm/curia/README.md', pattern: /Curia services \(([a-z, ]+)\)/g },
];

function checkNameLists(root: string): Problems {
  const out: Problems = [];
  for (const { file, pattern } of NAME_LISTS) {
    const matches = [...readFileSync(join(root, file), 'utf8').matchAll(pattern)];
    if (matches.length === 0) out.push(`${file}: no service list matching ${String(pattern)}`);
    for (const m of matches) sameSet(out, `${file} '${m[1] ?? ''}'`, (m[1] ?? '').split(/[\s|,]+/), NAMES);
  }
  return out;
}

/** The container files: the image exposes every catalogued port; the GPU image exactly embed's. */
function checkDockerfiles(root: string): Problems {
  const out: Problems = [];
  const exposed = (file: string) => {
    const line = /^EXPOSE (.+)$/m.exec(readFileSync(join(root, file), 'utf8'))?.[1] ?? '';
    return line.split(/\s+/).flatMap((tok) => {
      const [a = 0, b = a] = tok.split('-').map(Number);
      return Array.from({ length: b - a + 1 }, (_, i) => String(a + i));
    });
  };
  const ports = (list: readonly ServiceCatalogEntry[]) =>
    list.flatMap((s) => [s.grpcPort, s.metricsPort]).map(String);
  sameSet(out, 'deploy/Dockerfile EXPOSE', exposed('deploy/Dockerfile'), ports(SERVICE_CATALOG));
  sameSet(out, 'deploy/Dockerfile.embed-gpu EXPOSE', exposed('deploy/Dockerfile.embed-gpu'), [
    ...ports([catalogService('embed')]),
  ]);
  return out;
}

/** The repository's markdown files (top level, docs, deployment, every package README). */
function markdownFiles(root: string): string[] {
  const inDir = (dir: string) =>
    existsSync(join(root, dir))
      ? readdirSync(join(root, dir))
          .filter((f) => f.endsWith('.md'))
          .map((f) => (dir ? `${dir}/${f}` : f))
      : [];
  const packages = ['libs', 'services'].flatMap((d) =>
    existsSync(join(root, d)) ? readdirSync(join(root, d)).map((p) => `${d}/${p}`) : [],
  );
  return ['', 'docs', 'deploy', 'helm/curia', 'k8s', 'loadtest', 'proto', ...packages].flatMap(inDir);
}

/**
 * Addresses in the docs that name their service must use its port (replica r: port + 100·r):
 * `curia-embed:50052`, `embed.curia.svc.cluster.local:50052`, and a loopback address on a line
 * naming one Curia gRPC service (`127.0.0.1:50052 curia.embed.v1.EmbedService/GetInfo`).
 */
function checkDocAddresses(root: string): Problems {
  const out: Problems = [];
  const names = NAMES.join('|');
  const named = new RegExp(`\\b(?:curia-)?(${names})(?:\\.[\\w.-]+)?:(\\d{4,5})\\b`, 'g');
  const fits = (s: ServiceCatalogEntry, port: number) =>
    [s.grpcPort, s.metricsPort].some((p) => port >= p && (port - p) % 100 === 0 && port - p < 1600);
  for (const file of markdownFiles(root)) {
    readFileSync(join(root, file), 'utf8')
      .split('\n')
      .forEach((line, i) => {
        for (const m of line.matchAll(named)) {
          const s = catalogService(m[1] ?? '');
          if (!fits(s, Number(m[2]))) out.push(`${file}:${i + 1}: ${m[0]} is not a port of ${s.name}`);
        }
        const services = new Set(
          [...line.matchAll(/\bcuria\.(\w+)\.v1\.\w+Service\b|\b(\w+)\.\w+ServiceDefinition\b/g)].map(
            (m) => m[1] ?? m[2] ?? '',
          ),
        );
        const loopback = [...line.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
        const [only] = services;
        if (services.size !== 1 || loopback.length !== 1 || !only || !NAMES.includes(only)) return;
        const s = catalogService(only);
        if (!fits(s, loopback[0] ?? 0))
          out.push(`${file}:${i + 1}: 127.0.0.1:${loopback[0]} is not a port of ${s.name}`);
      });
  }
  return out;
}

/** One process per catalogued service: services/<name>/src/main.ts, and no uncatalogued service. */
function checkServiceDirs(root: string): Problems {
  const out: Problems = [];
  const dirs = readdirSync(join(root, 'services')).filter((d) =>
    existsSync(join(root, 'services', d, 'package.json')),
  );
  sameSet(out, 'services/', dirs, NAMES);
  for (const name of NAMES) {
    if (!existsSync(join(root, 'services', name, 'src', 'main.ts')))
      out.push(`services/${name}/src/main.ts is missing`);
  }
  return out;
}

/** Every disagreement between the catalogue and the files under `root`. */
function catalogDisagreements(root: string): Problems {
  return [
    checkHelmValues,
    checkHelmSchema,
    checkK8sBase,
    checkReadme,
    checkNameLists,
    checkDockerfiles,
    checkDocAddresses,
    checkServiceDirs,
  ].flatMap((check) => check(root));
}

// ---------------------------------------------------------------------------------------------

describe('service catalogue', () => {
  it('has one entry per name, gRPC service and port', () => {
    const unique = (xs: readonly unknown[]) => new Set(xs).size === xs.length;
    expect(unique(NAMES)).toBe(true);
    expect(unique(SERVICE_CATALOG.map((s) => s.grpcService))).toBe(true);
    expect(unique(SERVICE_CATALOG.flatMap((s) => [s.grpcPort, s.metricsPort]))).toBe(true);
  });

  it('names every callee variable CURIA_<NAME>_TARGET, as the chart derives it', () => {
    for (const s of SERVICE_CATALOG) {
      const entry: ServiceCatalogEntry = s;
      // Every name in `calls` is a catalogued service other than the caller.
      expect(
        callees(s.name).map((c) => c.name),
        s.name,
      ).toEqual(NAMES.filter((n) => (entry.calls ?? []).includes(n)));
      expect(entry.calls?.length ?? 0, s.name).toBe(callees(s.name).length);
      expect(CALLEES.get(s.name), s.name).not.toContain(s.name);
      for (const c of callees(s.name)) {
        expect(c.targetEnv).toBe(`CURIA_${c.name.toUpperCase()}_TARGET`);
        expect(targetEnvOf(c.name)).toBe(c.targetEnv);
      }
    }
    expect(CALLEES.get('segment')).toEqual(['preprocess', 'embed']);
    expect(CALLEES.get('register')).toEqual(['preprocess', 'embed']);
    expect(callersOf('register')).toEqual([]);
    expect(GATEWAY_STAGES.map((s) => s.name)).toEqual(CALLEES.get('gateway'));
    expect(ANALYSIS_SERVICES).toEqual([...STAGES, 'gateway']);
  });

  it('lists the launch order: every callee before its callers, the gateway last', () => {
    for (const s of SERVICE_CATALOG) {
      for (const c of CALLEES.get(s.name) ?? []) {
        expect(NAMES.indexOf(c), `${c} before ${s.name}`).toBeLessThan(NAMES.indexOf(s.name));
      }
    }
    expect(NAMES.at(-1)).toBe('gateway');
  });

  it("names each service's gRPC service as the generated contract in @curia/proto does", () => {
    sameSetExpect(
      SERVICE_CATALOG.map((s) => s.grpcService),
      proto.CURIA_SERVICE_NAMES,
    );
    const namespaces = proto as unknown as Record<string, Record<string, unknown>>;
    for (const s of SERVICE_CATALOG) {
      expect(proto.SERVICE_DEFINITIONS[s.grpcService].fullName).toBe(s.grpcService);
      // The proto package of a service is its short name: curia.<name>.v1.
      const definitions = Object.entries(namespaces[s.name] ?? {})
        .filter(([k]) => k.endsWith('ServiceDefinition'))
        .map(([, d]) => obj(d).fullName);
      expect(definitions, s.name).toEqual([s.grpcService]);
    }
  });

  it('gives the local addresses and the gateway defaults from the ports', () => {
    expect(localTarget('embed')).toBe('127.0.0.1:50052');
    expect(localStageTargets('10.0.0.1')).toEqual({
      CURIA_PREPROCESS_TARGET: '10.0.0.1:50051',
      CURIA_EMBED_TARGET: '10.0.0.1:50052',
      CURIA_HEADS_TARGET: '10.0.0.1:50053',
      CURIA_SEGMENT_TARGET: '10.0.0.1:50054',
    });
    expect(localTargetsOf('gateway', '10.0.0.1')).toEqual(localStageTargets('10.0.0.1'));
    expect(localTargetsOf('segment')).toEqual({
      CURIA_PREPROCESS_TARGET: '127.0.0.1:50051',
      CURIA_EMBED_TARGET: '127.0.0.1:50052',
    });
    expect(localTargetsOf('register')).toEqual({
      CURIA_PREPROCESS_TARGET: '127.0.0.1:50051',
      CURIA_EMBED_TARGET: '127.0.0.1:50052',
    });
    expect(() => catalogService('segmnet')).toThrow(/unknown service 'segmnet' \(known: preprocess, /);
  });
});

function sameSetExpect(actual: readonly string[], expected: readonly string[]): void {
  expect([...actual].sort()).toEqual([...expected].sort());
}

describe('files that repeat the catalogue', () => {
  it('agree with it: chart values and schema, k8s base, README tables, container files, docs, services/', () => {
    expect(catalogDisagreements(ROOT)).toEqual([]);
  });

  describe('a broken copy is reported', () => {
    let copy = '';
    afterEach(() => rmSync(copy, { recursive: true, force: true }));

    /** Copies every file the checker reads, then replaces `from` by `to` in `file`. */
    function brokenCopy(file: string, from: string | RegExp, to: string): string {
      copy = mkdtempSync(join(tmpdir(), 'curia-catalog-'));
      const files = [
        'helm/curia/values.yaml',
        'helm/curia/values.schema.json',
        'k8s/base/curia.yaml',
        ...NAME_LISTS.map((l) => l.file),
        'deploy/Dockerfile',
        'deploy/Dockerfile.embed-gpu',
        ...markdownFiles(ROOT),
        ...NAMES.flatMap((n) => [`services/${n}/package.json`, `services/${n}/src/main.ts`]),
      ];
      for (const f of new Set(files)) {
        cpSync(join(ROOT, f), join(copy, f), { recursive: true });
      }
      const text = readFileSync(join(copy, file), 'utf8');
      const broken = text.replace(from, to);
      // A replacement that changes nothing would make the case below pass for the wrong reason.
      expect(broken, `${file} has no ${String(from)}`).not.toBe(text);
      writeFileSync(join(copy, file), broken);
      return copy;
    }

    it.each([
      [
        'helm/curia/values.yaml',
        'grpcPort: 50052',
        'grpcPort: 50062',
        /values\.yaml services\.embed\.grpcPort: 50062/,
      ],
      ['helm/curia/values.yaml', /^ {6}heads: ""\n/m, '', /services\.gateway\.stageTargets: missing heads/],
      [
        'helm/curia/values.yaml',
        /(SegmentService\n(?: {4}#.*\n)* {4}stageTargets:\n {6}preprocess: ""\n) {6}embed: ""\n/,
        '$1',
        /services\.segment\.stageTargets: missing embed/,
      ],
      [
        'helm/curia/values.yaml',
        /(RegisterService\n(?: {4}#.*\n)* {4}stageTargets:\n {6}preprocess: ""\n) {6}embed: ""\n/,
        '$1',
        /services\.register\.stageTargets: missing embed/,
      ],
      [
        'helm/curia/values.yaml',
        /(RegisterService\n(?: {4}#.*\n)* {4}stageTargets:\n)/,
        '$1      heads: ""\n',
        /services\.register\.stageTargets: not in the catalogue heads/,
      ],
      [
        'helm/curia/values.schema.json',
        '"segment": {\n          "allOf"',
        '"segmnet": {\n          "allOf"',
        /services\.properties: missing segment/,
      ],
      [
        'helm/curia/values.schema.json',
        /(segment calls, each required",\s*"propertyNames": \{\s*"enum": \[\s*"preprocess"),\s*"embed"/,
        '$1',
        /services\.segment stageTargets propertyNames: missing embed/,
      ],
      [
        'k8s/base/curia.yaml',
        'value: "curia-heads:50053"',
        'value: "curia-heads:50063"',
        /gateway stage targets: missing CURIA_HEADS_TARGET=curia-heads:50053/,
      ],
      [
        'k8s/base/curia.yaml',
        /(value: "curia-segment" \}[\s\S]*?)\n *- \{ name: CURIA_EMBED_TARGET, value: "curia-embed:50052" \}/,
        '$1',
        /segment stage targets: missing CURIA_EMBED_TARGET=curia-embed:50052/,
      ],
      [
        'k8s/base/curia.yaml',
        /(name: curia-segment\n[\s\S]*?egress:\n[\s\S]*?)\n {4}- ports: \[\{ port: 50051, protocol: TCP \}\]\n {6}to:\n(?: {8,}.*\n)*? {14}app\.kubernetes\.io\/component: preprocess/,
        '$1',
        /NetworkPolicy curia-segment egress to callees: missing preprocess:50051/,
      ],
      [
        'k8s/base/curia.yaml',
        /(kind: NetworkPolicy\nmetadata:\n {2}name: curia-embed\n[\s\S]*?)\n {8}- podSelector:\n(?: {12,}.*\n)*? {14}app\.kubernetes\.io\/component: segment/,
        '$1',
        /NetworkPolicy curia-embed ingress \(gRPC\) from callers: missing segment/,
      ],
      [
        'k8s/base/curia.yaml',
        'service: curia.embed.v1.EmbedService }',
        'service: curia.embed.v1.Embed }',
        /embed startupProbe service/,
      ],
      ['README.md', '| 50054 / 9104 |', '| 50054 / 9105 |', /service table segment ports: "50054 \/ 9105"/],
      [
        'README.md',
        '`CURIA_EMBED_TARGET`, `CURIA_HEADS_TARGET`',
        '`CURIA_EMBED_TARGET`',
        /configuration: stage targets: missing CURIA_HEADS_TARGET/,
      ],
      ['README.md', /; segment → preprocess, embed/, '', /stage targets callers: missing segment/],
      ['deploy/entrypoint.sh', '| segment | register)', '| segment)', /entrypoint\.sh .*missing register/],
      [
        'helm/curia/files/alerts.yaml',
        'curia_service=~"gateway|',
        'curia_service=~"',
        /alerts\.yaml .*missing gateway/,
      ],
      ['deploy/Dockerfile', '9100-9105', '9100-9104', /Dockerfile EXPOSE: missing 9105/],
      [
        'helm/curia/README.md',
        'curia-embed:50052',
        'curia-embed:50053',
        /curia-embed:50053 is not a port of embed/,
      ],
      [
        'README.md',
        '127.0.0.1:50052 curia.embed',
        '127.0.0.1:50053 curia.embed',
        /50053 is not a port of embed/,
      ],
    ] as const)('%s: %s → %s', (file, from, to, expected) => {
      const problems = catalogDisagreements(brokenCopy(file, from, to));
      expect(problems.join('\n')).toMatch(expected);
    });
  });
});
