/** One Curia service as the local launcher and the deployment manifests know it. */
export interface ServiceEntry {
  /** Short name; the process runs `services/<name>/dist/main.js`. */
  readonly name: string;
  /** Fully-qualified gRPC service name (health is reported under it). */
  readonly grpcService: string;
  /** Default gRPC port in local mode; replica r listens on port + 100·r. */
  readonly grpcPort: number;
  /** Default metrics port in local mode; replica r listens on port + 100·r. */
  readonly metricsPort: number;
  /** Environment variable through which the gateway reaches this service, if it does. */
  readonly targetEnv?: string;
}

/** Every service, stages first: the gateway starts last, once its stages are up. */
export const SERVICES: readonly ServiceEntry[] = [
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
  {
    name: 'segment',
    grpcService: 'curia.segment.v1.SegmentService',
    grpcPort: 50054,
    metricsPort: 9104,
    targetEnv: 'CURIA_SEGMENT_TARGET',
  },
  {
    name: 'register',
    grpcService: 'curia.register.v1.RegisterService',
    grpcPort: 50055,
    metricsPort: 9105,
    targetEnv: 'CURIA_REGISTER_TARGET',
  },
  { name: 'gateway', grpcService: 'curia.gateway.v1.GatewayService', grpcPort: 50050, metricsPort: 9100 },
];

/** Looks a service up by short name. */
export function serviceEntry(name: string): ServiceEntry {
  const entry = SERVICES.find((s) => s.name === name);
  if (!entry) throw new Error(`unknown service '${name}' (known: ${SERVICES.map((s) => s.name).join(', ')})`);
  return entry;
}
