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
   * The gateway's environment variable holding this service's address, when the gateway calls it
   * (always `CURIA_<NAME>_TARGET`: the chart derives it from the name). Absent for services the
   * gateway does not call.
   */
  readonly targetEnv?: `CURIA_${string}_TARGET`;
}

/**
 * Every Curia service, stages first: the launcher starts the gateway last, once its stages are
 * up. Segment and register answer UNIMPLEMENTED to their compute rpc today and the gateway does
 * not call them, so they have no `targetEnv`; giving them one (with the gateway reading it and a
 * `services.gateway.stageTargets.<name>` key in the chart's values and schema) makes them stages.
 */
export const SERVICE_CATALOG = [
  {
    name: 'preprocess',
    grpcService: 'curia.preprocess.v1.PreprocessService',
    grpcPort: 50051,
    metricsPort: 9101,
    targetEnv: 'CURIA_PREPROCESS_TARGET',
  },
  {
    name: 'embed',
    grpcService: 'curia.embed.v1.EmbedService',
    grpcPort: 50052,
    metricsPort: 9102,
    targetEnv: 'CURIA_EMBED_TARGET',
  },
  {
    name: 'heads',
    grpcService: 'curia.heads.v1.HeadsService',
    grpcPort: 50053,
    metricsPort: 9103,
    targetEnv: 'CURIA_HEADS_TARGET',
  },
  { name: 'segment', grpcService: 'curia.segment.v1.SegmentService', grpcPort: 50054, metricsPort: 9104 },
  { name: 'register', grpcService: 'curia.register.v1.RegisterService', grpcPort: 50055, metricsPort: 9105 },
  { name: 'gateway', grpcService: 'curia.gateway.v1.GatewayService', grpcPort: 50050, metricsPort: 9100 },
] as const satisfies readonly ServiceCatalogEntry[];

/** A catalogued service's short name. */
export type CatalogServiceName = (typeof SERVICE_CATALOG)[number]['name'];

/** Catalogue entries the gateway calls (those with a `targetEnv`), in catalogue order. */
type StageEntry = Extract<(typeof SERVICE_CATALOG)[number], { readonly targetEnv: string }>;

/** The gateway's stage-target variables, e.g. `CURIA_EMBED_TARGET`. */
export type StageTargetEnv = StageEntry['targetEnv'];

/** The services the gateway calls, in catalogue order. */
export const GATEWAY_STAGES: readonly StageEntry[] = SERVICE_CATALOG.filter(
  (s): s is StageEntry => 'targetEnv' in s,
);

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
 * The gateway's default stage targets in local mode, keyed by variable:
 * `{ CURIA_PREPROCESS_TARGET: '127.0.0.1:50051', … }`.
 */
export function localStageTargets(host = '127.0.0.1'): Readonly<Record<StageTargetEnv, string>> {
  return Object.fromEntries(GATEWAY_STAGES.map((s) => [s.targetEnv, localTarget(s.name, host)])) as Record<
    StageTargetEnv,
    string
  >;
}
