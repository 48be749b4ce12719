import type { CuriaServiceName } from '@curia/proto';

/**
 * One Curia service: the facts every launcher, manifest and document states about it.
 *
 * The chart (`helm/curia/values.yaml`, `values.schema.json`, the templates), the rendered
 * `k8s/base/curia.yaml`, the top README's tables and the container files repeat these facts;
 * `service-catalog.test.ts` fails when one of them disagrees with {@link SERVICE_CATALOG}.
 */
export interface ServiceCatalogEntry {
  /** Short name: the process runs `services/<name>/dist/main.js`; the chart names objects `<release>-<name>`. */
  readonly name: string;
  /** Fully-qualified gRPC service name (health and reflection report it; probes check it). */
  readonly grpcService: CuriaServiceName;
  /** gRPC port in local mode and in the chart; replica r of `curia up` listens on port + 100·r. */
  readonly grpcPort: number;
  /** Port of `/metrics`, `/livez`, `/readyz`, chosen like {@link grpcPort}. */
  readonly metricsPort: number;
  /**
   * The services this one calls. A caller finds callee `x` at `CURIA_<X>_TARGET` (see
   * {@link targetEnvOf}); the chart gives it the variable and network egress to `x`, and the
   * launcher starts callees first.
   */
  readonly calls?: readonly string[];
}

/**
 * Every Curia service, callees before their callers (the launcher starts them in this order, the
 * gateway last). Register calls Preprocess and Embed, for Curia features only; nothing calls it.
 */
export const SERVICE_CATALOG = [
  {
    name: 'preprocess',
    grpcService: 'curia.preprocess.v1.PreprocessService',
    grpcPort: 50051,
    metricsPort: 9101,
  },
  { name: 'embed', grpcService: 'curia.embed.v1.EmbedService', grpcPort: 50052, metricsPort: 9102 },
  { name: 'heads', grpcService: 'curia.heads.v1.HeadsService', grpcPort: 50053, metricsPort: 9103 },
  {
    name: 'segment',
    grpcService: 'curia.segment.v1.SegmentService',
    grpcPort: 50054,
    metricsPort: 9104,
    calls: ['preprocess', 'embed'],
  },
  {
    name: 'register',
    grpcService: 'curia.register.v1.RegisterService',
    grpcPort: 50055,
    metricsPort: 9105,
    calls: ['preprocess', 'embed'],
  },
  {
    name: 'gateway',
    grpcService: 'curia.gateway.v1.GatewayService',
    grpcPort: 50050,
    metricsPort: 9100,
    calls: ['preprocess', 'embed', 'heads', 'segment'],
  },
] as const satisfies readonly ServiceCatalogEntry[];

/** A catalogued service's short name. */
export type CatalogServiceName = (typeof SERVICE_CATALOG)[number]['name'];

/** The variable through which callers find service `name`: `CURIA_<NAME>_TARGET`. */
export function targetEnvOf<N extends string>(name: N): `CURIA_${Uppercase<N>}_TARGET` {
  return `CURIA_${name.toUpperCase() as Uppercase<N>}_TARGET`;
}

type Entry = (typeof SERVICE_CATALOG)[number];
/** The names a catalogued service calls. */
type CallsOf<N extends CatalogServiceName> =
  Extract<Entry, { readonly name: N }> extends { readonly calls: readonly (infer C)[] } ? C : never;

/** A service another one calls, with the variable it is found at. */
export type Callee<N extends string = CatalogServiceName> = ServiceCatalogEntry & {
  readonly name: N;
  readonly targetEnv: `CURIA_${Uppercase<N>}_TARGET`;
};

/** The services `name` calls, in catalogue order, each with its target variable. */
export function calleesOf<N extends CatalogServiceName>(
  name: N,
): readonly Callee<Extract<CallsOf<N>, string>>[] {
  const calls: readonly string[] = catalogService(name).calls ?? [];
  return SERVICE_CATALOG.filter((s) => calls.includes(s.name)).map((s) => ({
    ...s,
    targetEnv: targetEnvOf(s.name),
  })) as unknown as Callee<Extract<CallsOf<N>, string>>[];
}

/** The gateway's stage-target variables, e.g. `CURIA_EMBED_TARGET`. */
export type StageTargetEnv = `CURIA_${Uppercase<Extract<CallsOf<'gateway'>, string>>}_TARGET`;

/** The services the gateway calls, in catalogue order. */
export const GATEWAY_STAGES = calleesOf('gateway');

/** The services a whole-study analysis (AnalyzeStudy) needs: every gateway stage, then the gateway. */
export const ANALYSIS_SERVICES: readonly CatalogServiceName[] = [
  ...GATEWAY_STAGES.map((s) => s.name),
  'gateway',
];

/** Looks a service up by short name; throws naming the known services otherwise. */
export function catalogService(name: string): ServiceCatalogEntry {
  const entry = SERVICE_CATALOG.find((s) => s.name === name);
  if (!entry) {
    throw new Error(`unknown service '${name}' (known: ${SERVICE_CATALOG.map((s) => s.name).join(', ')})`);
  }
  return entry;
}

/** `host:grpcPort` of a service in local mode, e.g. `127.0.0.1:50052` for embed. */
export function localTarget(name: CatalogServiceName, host = '127.0.0.1'): string {
  return `${host}:${catalogService(name).grpcPort}`;
}

/**
 * The local-mode addresses of the services `name` calls, keyed by variable, e.g. for the gateway
 * `{ CURIA_PREPROCESS_TARGET: '127.0.0.1:50051', … }`.
 */
export function localTargetsOf(
  name: CatalogServiceName,
  host = '127.0.0.1',
): Readonly<Record<string, string>> {
  return Object.fromEntries(calleesOf(name).map((s) => [s.targetEnv, localTarget(s.name, host)]));
}

/** The gateway's default stage targets in local mode, keyed by variable. */
export function localStageTargets(host = '127.0.0.1'): Readonly<Record<StageTargetEnv, string>> {
  return localTargetsOf('gateway', host);
}
