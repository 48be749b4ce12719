import {
  createServer,
  type CompatServiceDefinition,
  type Server,
  type ServiceImplementation,
} from 'nice-grpc';
import { openTelemetryServerMiddleware } from 'nice-grpc-opentelemetry';
import { HealthDefinition, HealthServiceImpl, HealthState } from 'nice-grpc-server-health';

import { callerAuthFromEnv, callerAuthMiddleware, type CallerContext } from './caller-auth.js';
import type { ServiceEnv } from './config.js';
import { deadlineInterceptor, deadlineMiddleware, type DeadlineContext } from './deadline.js';
import { DrainController, callMiddleware } from './drain.js';
import { MetricsHttpServer } from './http.js';
import { createLogger, type Logger } from './logger.js';
import { createMemoryBudget, type MemoryBudget } from './memory-budget.js';
import { ServiceMetrics } from './metrics.js';
import { shutdownTelemetry } from './telemetry.js';
import { raiseServerFlowControlWindow } from './http2-window.js';
import { addReflection } from './reflection.js';
import { peerIdentityInterceptor } from './peer-identity.js';
import { configureStudyHashKey, studyHashKeyConfigured } from './study-id.js';
import { serverTls, type ServerTls } from './tls.js';

/**
 * Context every Curia handler receives: nice-grpc's CallContext plus the caller's deadline, who
 * is calling and the call's audit notes (optional so handlers can be driven directly in tests).
 */
export type CuriaCallContext = DeadlineContext & Partial<CallerContext>;

/** Options of {@link CuriaServer}. */
export interface CuriaServerOptions {
  /** Short service name (`embed`, `gateway`, …), used in logs, metrics and GetInfo. */
  readonly name: string;
  /** Validated environment settings (see `serviceEnvSchema`). */
  readonly env: ServiceEnv;
  readonly logger?: Logger;
  readonly metrics?: ServiceMetrics;
  /**
   * Serialized FileDescriptorSet of the application's services; when set, the server serves
   * reflection (`grpcurl` with no proto files) for them and for health and reflection.
   */
  readonly descriptorSet?: Uint8Array;
  /** Time between reporting NOT_SERVING and closing the listener, so balancers notice, ms. */
  readonly notifyDelayMs?: number;
}

/** Ports the server bound (useful with port 0). */
export interface BoundPorts {
  readonly grpcPort: number;
  readonly metricsPort: number;
}

/**
 * A Curia gRPC server: nice-grpc with explicit message limits, keepalive and max connection age,
 * `grpc.health.v1` (Check and Watch) per service, reflection, OpenTelemetry and Prometheus
 * middleware, precise error mapping, caller authentication with a per-method policy and an audit line per
 * rpc (`CURIA_AUTH*`), TLS/mTLS with certificate rotation, and graceful drain.
 */
export class CuriaServer {
  readonly log: Logger;
  readonly metrics: ServiceMetrics;
  readonly health = HealthState();
  readonly drain = new DrainController();
  /** The process's memory budget (`CURIA_MEMORY_BUDGET_*`), with its gauge and refusal counter. */
  readonly memory: MemoryBudget;
  private readonly server: Server<CuriaCallContext>;
  private readonly tls: ServerTls;
  private readonly http: MetricsHttpServer;
  private readonly serviceNames: string[] = [];
  private shutdownPromise: Promise<void> | null = null;
  private ports: BoundPorts | null = null;
  private fatalHandler: ((err: Error) => void) | null = null;
  private fatalError: Error | null = null;

  constructor(readonly options: CuriaServerOptions) {
    const { env, name } = options;
    this.log = options.logger ?? createLogger(name, env.CURIA_LOG_LEVEL, env.CURIA_REPLICA);
    this.metrics =
      options.metrics ??
      new ServiceMetrics(name, {
        processMetrics: env.CURIA_PROCESS_METRICS,
        ...(env.CURIA_REPLICA ? { defaultLabels: { curia_replica: env.CURIA_REPLICA } } : {}),
      });
    this.memory = createMemoryBudget(env, this.metrics);
    this.log.debug({ memoryBudgetBytes: this.memory.capacity }, 'memory budget');
    configureStudyHashKey(env.CURIA_AUDIT_KEY_FILE);
    if (!studyHashKeyConfigured()) {
      this.log.debug('CURIA_AUDIT_KEY_FILE unset: study hashes use a random per-process key');
    }
    this.tls = serverTls(env);
    const auth = callerAuthFromEnv(env);
    if (auth.mode === 'off') this.log.info('local mode: CURIA_AUTH=off, callers are not authenticated');
    raiseServerFlowControlWindow(env.CURIA_FLOW_CONTROL_WINDOW_BYTES);
    const server = createServer({
      'grpc.max_receive_message_length': env.CURIA_MAX_RECEIVE_MESSAGE_BYTES,
      'grpc.max_send_message_length': env.CURIA_MAX_SEND_MESSAGE_BYTES,
      'grpc.keepalive_time_ms': env.CURIA_KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': env.CURIA_KEEPALIVE_TIMEOUT_MS,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_connection_age_ms': env.CURIA_MAX_CONNECTION_AGE_MS,
      'grpc.max_connection_age_grace_ms': env.CURIA_MAX_CONNECTION_AGE_GRACE_MS,
      'grpc.max_concurrent_streams': env.CURIA_MAX_CONCURRENT_STREAMS,
      interceptors: [deadlineInterceptor, peerIdentityInterceptor()],
    })
      .use(openTelemetryServerMiddleware())
      .use(this.metrics.grpcMiddleware)
      .use(deadlineMiddleware)
      .use(callerAuthMiddleware(auth, this.log));
    this.server = server.use(callMiddleware(this.drain, this.metrics, this.log));
    // NOT_SERVING until the service reports ready (models loaded, warm-up done).
    this.health.setStatus('unhealthy');
    this.server.add(HealthDefinition, HealthServiceImpl(this.health));
    this.http = new MetricsHttpServer(this.metrics.registry, {
      live: () => true,
      ready: () => this.health.getStatus() === 'healthy',
    });
  }

  /** Registers a service implementation; its health status starts NOT_SERVING. */
  add<S extends CompatServiceDefinition>(
    definition: S,
    implementation: ServiceImplementation<S, CuriaCallContext>,
  ): void {
    this.server.add(definition, implementation);
    const fullName = serviceFullName(definition);
    this.serviceNames.push(fullName);
    this.health.setStatus('unhealthy', fullName);
  }

  /** Full names of the registered application services. */
  get services(): readonly string[] {
    return this.serviceNames;
  }

  /** Binds the gRPC and HTTP listeners. */
  async start(): Promise<BoundPorts> {
    const { env, descriptorSet } = this.options;
    if (descriptorSet) addReflection(this.server, descriptorSet, this.serviceNames);
    const release = await this.tls.loaded();
    const grpcPort = await this.server.listen(
      `${env.CURIA_GRPC_HOST}:${env.CURIA_GRPC_PORT}`,
      this.tls.credentials,
    );
    release();
    const metricsPort = await this.http.listen(env.CURIA_GRPC_HOST, env.CURIA_METRICS_PORT);
    this.ports = { grpcPort, metricsPort };
    this.log.info({ grpcPort, metricsPort, tls: Boolean(env.CURIA_TLS_CERT_FILE) }, 'listening');
    return this.ports;
  }

  /** Bound ports, once started. */
  get boundPorts(): BoundPorts | null {
    return this.ports;
  }

  /** Reports every service (and the server as a whole) SERVING or NOT_SERVING. */
  setServing(serving: boolean): void {
    const status = serving ? 'healthy' : 'unhealthy';
    for (const name of this.serviceNames) this.health.setStatus(status, name);
    this.health.setStatus(status);
  }

  /**
   * The process can no longer do its job (e.g. its inference engine died): reports NOT_SERVING
   * now, so balancers and probes route around it, and hands the error to the handler
   * {@link onFatal} installed (under `runService`: drain, then exit 1 for a restart). Idempotent.
   */
  fatal(err: Error): void {
    if (this.fatalError) return;
    this.fatalError = err;
    this.log.error({ err }, 'fatal: this replica stops serving');
    this.setServing(false);
    this.fatalHandler?.(err);
  }

  /** Installs what {@link fatal} does after NOT_SERVING (called at once if it already happened). */
  onFatal(handler: (err: Error) => void): void {
    this.fatalHandler = handler;
    if (this.fatalError) handler(this.fatalError);
  }

  /** The error {@link fatal} was called with, if any. */
  get failed(): Error | null {
    return this.fatalError;
  }

  /**
   * Graceful shutdown: health → NOT_SERVING (Watch streams see it), stop admitting calls, let
   * in-flight calls finish within `CURIA_SHUTDOWN_GRACE_MS`, then end the rest with UNAVAILABLE,
   * close listeners and flush telemetry. Idempotent.
   */
  shutdown(): Promise<void> {
    this.shutdownPromise ??= this.doShutdown();
    return this.shutdownPromise;
  }

  /** Ends every call now and closes the listeners without waiting. */
  forceShutdown(): void {
    this.drain.abortAll();
    this.server.forceShutdown();
    void this.http.close();
  }

  private async doShutdown(): Promise<void> {
    const grace = this.options.env.CURIA_SHUTDOWN_GRACE_MS;
    this.log.info({ inFlight: this.drain.inFlight, graceMs: grace }, 'draining');
    this.setServing(false);
    if (this.options.notifyDelayMs) await sleep(this.options.notifyDelayMs);
    this.drain.beginDrain();
    // Watch streams never end on their own; let them deliver NOT_SERVING, then close them.
    await sleep(50);
    this.drain.abortWhere((m) => m === '/grpc.health.v1.Health/Watch');
    const closed = this.server.shutdown();
    const idle = await this.drain.waitIdle(grace);
    if (!idle) {
      const n = this.drain.abortAll();
      this.log.warn({ aborted: n }, 'grace period over: ending remaining calls with UNAVAILABLE');
      await this.drain.waitIdle(2_000);
    }
    const finished = await Promise.race([closed.then(() => true), sleep(2_000).then(() => false)]);
    if (!finished) this.server.forceShutdown();
    await this.http.close();
    await shutdownTelemetry();
    this.log.info('stopped');
  }
}

function serviceFullName(definition: CompatServiceDefinition): string {
  if ('fullName' in definition && typeof definition.fullName === 'string') return definition.fullName;
  const first = Object.values(definition as Record<string, { path?: string }>)[0];
  const path = first?.path ?? '';
  return path.split('/')[1] ?? '';
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
