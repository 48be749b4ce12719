import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  createCuriaChannel,
  targetsFileUri,
  writeTargetsFile,
  type Channel,
  type ClientTls,
} from '@curia/client';
import { targetEnvOf, type AddressInUseMessage, type ListeningMessage } from '@curia/kit';
import { serviceNodeFlags, serviceProcessEnv } from '@curia/kit/process-tuning';
import { createClient } from 'nice-grpc';
import {
  HealthCheckResponse_ServingStatus,
  HealthDefinition,
} from 'nice-grpc-server-health/lib/proto/grpc/health/v1/health.js';

import { SERVICES, type ServiceEntry } from './catalog.js';

/** Options of {@link LocalCluster.start}. */
export interface LocalClusterOptions {
  /** Processes per service (default 1 each). */
  readonly replicas?: Readonly<Record<string, number>>;
  /** Use the catalog's fixed ports (default) or let each process pick free ports (tests). */
  readonly ports?: 'fixed' | 'dynamic';
  /** Offset added to every fixed port, to run two clusters side by side. */
  readonly portOffset?: number;
  /** Log level of the service processes. */
  readonly logLevel?: string;
  /**
   * TLS for the launcher's own health checks, when the services serve TLS (their certificates
   * come through `env`/`serviceEnv`; health needs no credentials, only the transport).
   */
  readonly tls?: ClientTls;
  /** Extra environment for every process (e.g. CURIA_SHUTDOWN_GRACE_MS). */
  readonly env?: Readonly<Record<string, string>>;
  /** Extra environment for the processes of one service, by service name (applied after `env`). */
  readonly serviceEnv?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** Only these services (default: all). The gateway gets targets for those present. */
  readonly only?: readonly string[];
  /** How long to wait for every process to report SERVING, ms. */
  readonly readyTimeoutMs?: number;
  /** Where service output goes (default: prefixed lines on this process's stderr). */
  readonly onOutput?: (replica: string, line: string) => void;
  /**
   * How the gateway finds its stages: `static` (default) hands it the address list at start;
   * `targets-file` hands it `curia-targets:///<tmp>/<service>.targets`, a file the launcher
   * rewrites when replicas are added, exit or restart, which the gateway re-reads whenever a
   * connection closes (at the latest at `CURIA_MAX_CONNECTION_AGE_MS`).
   */
  readonly discovery?: 'static' | 'targets-file';
}

/** One running service process. */
export interface ReplicaEndpoint {
  readonly service: string;
  readonly replica: string;
  readonly pid: number;
  readonly grpcPort: number;
  readonly metricsPort: number;
  readonly grpcService: string;
}

/**
 * A replica could not bind a fixed port because another process listens there (typically a
 * cluster already running on the same ports).
 */
export class PortInUseError extends Error {
  override name = 'PortInUseError';

  constructor(
    readonly replica: string,
    readonly listener: 'gRPC' | 'metrics',
    readonly port: number,
  ) {
    super(
      `port ${port} (${replica} ${listener}) is already in use — another Curia cluster may be running (\`curia up\` twice?)`,
    );
  }
}

/** How to start one replica process ({@link LocalCluster} spawnReplica). */
interface ReplicaSpec {
  readonly entry: ServiceEntry;
  /** Replica name: the service name, or `<service>-<n>` when it has several. */
  readonly name: string;
  /** Index of the replica within its service (port offset 100·index in fixed mode). */
  readonly index: number;
  readonly ports: { readonly grpcPort: number; readonly metricsPort: number };
  /** Environment on top of the cluster's (the gateway's stage targets). */
  readonly extraEnv?: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
}

interface Replica {
  readonly entry: ServiceEntry;
  readonly name: string;
  /** Index of the replica within its service (port offset 100·index in fixed mode). */
  readonly index: number;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  endpoint: ReplicaEndpoint | null;
  readonly stderrTail: string[];
}

/** The repository root (where `services/` lives), found from this module's location. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && existsSync(join(dir, 'services'))) {
      const parsed = JSON.parse(readFileSync(pkg, 'utf8')) as { workspaces?: unknown };
      if (parsed.workspaces) return dir;
    }
    dir = dirname(dir);
  }
  throw new Error('cannot find the Curia repository root (a package.json with workspaces next to services/)');
}

/**
 * The local cluster: every service as its own OS process on loopback, stages first and the
 * gateway last, with several replicas of a service behind the gateway's round-robin channel.
 */
export class LocalCluster {
  private stopping: Promise<Map<string, number | null>> | null = null;
  private readonly root: string;
  private targetsDir: string | null = null;

  private constructor(
    private readonly replicas: Replica[],
    private readonly options: LocalClusterOptions = {},
  ) {
    this.root = repoRoot();
  }

  /** Starts the processes and resolves once every one reports SERVING. */
  static async start(options: LocalClusterOptions = {}): Promise<LocalCluster> {
    const root = repoRoot();
    const wanted = SERVICES.filter((s) => !options.only || options.only.includes(s.name));
    for (const s of wanted) {
      const main = join(root, 'services', s.name, 'dist', 'main.js');
      if (!existsSync(main)) throw new Error(`${main} is missing: run 'npm run build' first`);
    }
    const cluster = new LocalCluster([], options);
    const timeout = options.readyTimeoutMs ?? 300_000;
    try {
      if (options.discovery === 'targets-file')
        cluster.targetsDir = mkdtempSync(join(tmpdir(), 'curia-targets-'));
      // Waves: a service starts once every service it calls (that this cluster runs) is serving.
      const started = new Set<string>();
      while (started.size < wanted.length) {
        const wave = wanted.filter(
          (s) =>
            !started.has(s.name) &&
            (s.calls ?? []).every((c) => started.has(c) || !wanted.some((w) => w.name === c)),
        );
        if (wave.length === 0) throw new Error('the service catalogue has a call cycle');
        await Promise.all(wave.flatMap((s) => cluster.spawnService(s, cluster.targetsFor(s), timeout)));
        for (const s of wave) {
          started.add(s.name);
          cluster.syncTargets(s.name);
        }
      }
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** The `CURIA_<X>_TARGET` variables of the services `entry` calls that run in this cluster. */
  private targetsFor(entry: ServiceEntry): Record<string, string> {
    const targets: Record<string, string> = {};
    for (const callee of entry.calls ?? []) {
      const endpoints = this.endpoints().filter((e) => e.service === callee);
      if (endpoints.length === 0) continue;
      const file = this.targetsFile(callee);
      targets[targetEnvOf(callee)] = file
        ? targetsFileUri(file)
        : endpoints.map((e) => `127.0.0.1:${e.grpcPort}`).join(',');
    }
    return targets;
  }

  private spawnService(
    entry: ServiceEntry,
    extraEnv: Record<string, string>,
    timeoutMs: number,
  ): Promise<void>[] {
    const count = this.options.replicas?.[entry.name] ?? 1;
    return Array.from({ length: count }, (_, index) => {
      const name = count > 1 ? `${entry.name}-${index + 1}` : entry.name;
      return this.spawnReplica({
        entry,
        name,
        index,
        ports: this.portsOf(entry, index),
        extraEnv,
        timeoutMs,
      });
    });
  }

  /** The ports of replica `index` of a service: the catalog's + 100·index + offset, or 0 (dynamic). */
  private portsOf(entry: ServiceEntry, index: number): ReplicaSpec['ports'] {
    if (this.options.ports === 'dynamic') return { grpcPort: 0, metricsPort: 0 };
    const offset = 100 * index + (this.options.portOffset ?? 0);
    return { grpcPort: entry.grpcPort + offset, metricsPort: entry.metricsPort + offset };
  }

  private spawnReplica(spec: ReplicaSpec): Promise<void> {
    const { entry, name, index, ports, timeoutMs } = spec;
    const options = this.options;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      CURIA_GRPC_HOST: '127.0.0.1',
      CURIA_GRPC_PORT: String(ports.grpcPort),
      CURIA_METRICS_PORT: String(ports.metricsPort),
      CURIA_REPLICA: name,
      CURIA_LOG_LEVEL: options.logLevel ?? 'warn',
      ...options.env,
      ...options.serviceEnv?.[entry.name],
      ...spec.extraEnv,
    };
    const child = fork(join(this.root, 'services', entry.name, 'dist', 'main.js'), [], {
      env: serviceProcessEnv(env),
      execArgv: [...process.execArgv, ...serviceNodeFlags(env)],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // Own process group: a terminal's Ctrl-C reaches only the launcher, which then drains the
      // services in order. If the launcher dies, the IPC channel closes and each service drains.
      detached: true,
    });
    const replica: Replica = {
      entry,
      name,
      index,
      child,
      exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
      endpoint: null,
      stderrTail: [],
    };
    this.replicas.push(replica);
    // A replica that dies leaves the targets file (as a pod that fails readiness leaves its Service).
    void replica.exited.then(() => {
      if (!this.stopping) this.syncTargets(entry.name);
    });
    const out = options.onOutput ?? ((who, line) => process.stderr.write(`[${who}] ${line}\n`));
    pipeLines(child.stdout, (line) => out(name, line));
    pipeLines(child.stderr, (line) => {
      replica.stderrTail.push(line);
      if (replica.stderrTail.length > 20) replica.stderrTail.shift();
      out(name, line);
    });
    return this.awaitServing(replica, timeoutMs);
  }

  /** The targets file of a stage service (`discovery: 'targets-file'`), or null. */
  targetsFile(service: string): string | null {
    return this.targetsDir ? join(this.targetsDir, `${service}.targets`) : null;
  }

  /** Rewrites a service's targets file with the replicas that are serving (alive, ports bound). */
  private syncTargets(service: string): void {
    const file = this.targetsFile(service);
    if (!file) return;
    const live = this.replicas.filter(
      (r) =>
        r.entry.name === service && r.endpoint && r.child.exitCode === null && r.child.signalCode === null,
    );
    writeTargetsFile(
      file,
      live.map((r) => `127.0.0.1:${r.endpoint?.grpcPort ?? 0}`),
    );
  }

  private replica(name: string): Replica {
    // The latest process of that name (a restarted replica replaces the dead one).
    const r = this.replicas.findLast((x) => x.name === name);
    if (!r)
      throw new Error(
        `no replica '${name}' (known: ${[...new Set(this.replicas.map((x) => x.name))].join(', ')})`,
      );
    return r;
  }

  /** The Prometheus scrape URL of a replica. */
  metricsUrl(replica: string): string {
    const endpoint = this.replica(replica).endpoint;
    if (!endpoint) throw new Error(`replica '${replica}' has not bound its ports`);
    return `http://127.0.0.1:${endpoint.metricsPort}/metrics`;
  }

  /**
   * Sends `signal` to a replica's process (fault injection: SIGTERM drains, SIGKILL dies at
   * once) and resolves with its exit code (null when killed by a signal).
   */
  async kill(replica: string, signal: NodeJS.Signals): Promise<number | null> {
    const r = this.replica(replica);
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill(signal);
    const code = await r.exited;
    this.syncTargets(r.entry.name);
    return code;
  }

  /**
   * Starts one more replica of a running stage service (named `<service>-<n>`), waits until it
   * is SERVING and adds it to the service's targets file. Resolves with its endpoint.
   */
  async addReplica(
    service: string,
    timeoutMs = this.options.readyTimeoutMs ?? 300_000,
  ): Promise<ReplicaEndpoint> {
    const existing = this.replicas.filter((r) => r.entry.name === service);
    const first = existing[0];
    if (!first) throw new Error(`service '${service}' is not running`);
    const index = Math.max(...existing.map((r) => r.index)) + 1;
    const names = new Set(existing.map((r) => r.name));
    let n = index + 1;
    while (names.has(`${service}-${n}`)) n++;
    const name = `${service}-${n}`;
    await this.spawnReplica({
      entry: first.entry,
      name,
      index,
      ports: this.portsOf(first.entry, index),
      timeoutMs,
    });
    this.syncTargets(service);
    const endpoint = this.replica(name).endpoint;
    if (!endpoint) throw new Error(`replica '${name}' did not bind its ports`);
    return endpoint;
  }

  /**
   * Starts a replica whose process has exited again, on the same gRPC and metrics ports (so
   * static target lists reach it again), and waits until it is SERVING.
   */
  async restartReplica(
    replica: string,
    timeoutMs = this.options.readyTimeoutMs ?? 300_000,
  ): Promise<ReplicaEndpoint> {
    const old = this.replica(replica);
    if (old.child.exitCode === null && old.child.signalCode === null) {
      throw new Error(`replica '${replica}' is still running; kill it first`);
    }
    if (!old.endpoint) throw new Error(`replica '${replica}' never bound its ports`);
    const ports = { grpcPort: old.endpoint.grpcPort, metricsPort: old.endpoint.metricsPort };
    await this.spawnReplica({ entry: old.entry, name: old.name, index: old.index, ports, timeoutMs });
    this.syncTargets(old.entry.name);
    const endpoint = this.replica(replica).endpoint;
    if (!endpoint) throw new Error(`replica '${replica}' did not bind its ports`);
    return endpoint;
  }

  private async awaitServing(replica: Replica, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let busy: AddressInUseMessage | null = null;
    replica.child.on('message', (msg: { type?: string }) => {
      if (msg.type === 'curia:address-in-use') busy = msg as AddressInUseMessage;
    });
    const failed = replica.exited.then((code) => {
      if (busy) throw new PortInUseError(replica.name, busy.listener, busy.port);
      throw new Error(
        `${replica.name} exited with code ${code} before serving${
          replica.stderrTail.length ? `:\n  ${replica.stderrTail.join('\n  ')}` : ''
        }`,
      );
    });
    failed.catch(() => undefined);
    const listening = new Promise<ReplicaEndpoint>((resolve) => {
      replica.child.on('message', (msg: Partial<ListeningMessage>) => {
        if (msg.type === 'curia:listening' && msg.grpcPort && msg.metricsPort) {
          resolve({
            service: replica.entry.name,
            replica: replica.name,
            pid: replica.child.pid ?? -1,
            grpcPort: msg.grpcPort,
            metricsPort: msg.metricsPort,
            grpcService: replica.entry.grpcService,
          });
        }
      });
    });
    const timer = (ms: number) =>
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`${replica.name} not SERVING within ${timeoutMs} ms`)), ms).unref(),
      );
    const endpoint = await Promise.race([listening, failed, timer(timeoutMs)]);
    replica.endpoint = endpoint;
    const channel = createCuriaChannel(
      `127.0.0.1:${endpoint.grpcPort}`,
      this.options.tls ? { tls: this.options.tls } : {},
    );
    try {
      await Promise.race([waitServing(channel, endpoint.grpcService, deadline), failed]);
    } finally {
      channel.close();
    }
  }

  /** Endpoints of every live process that has bound its ports (a restarted replica once). */
  endpoints(): ReplicaEndpoint[] {
    return this.replicas.flatMap((r) => (r.endpoint && this.replica(r.name) === r ? [r.endpoint] : []));
  }

  /** The gRPC target (`127.0.0.1:port[,…]`) of a service's replicas. */
  target(service: string): string {
    const list = this.endpoints().filter((e) => e.service === service);
    if (list.length === 0) throw new Error(`service '${service}' is not running`);
    return list.map((e) => `127.0.0.1:${e.grpcPort}`).join(',');
  }

  /** The child process of a replica (for fault tests); the latest one after a restart. */
  process(replica: string): ChildProcess {
    return this.replica(replica).child;
  }

  /**
   * Drains every process with SIGTERM, the gateway first so analyses finish against live
   * stages; SIGKILL after `killAfterMs`. Resolves with each replica's exit code.
   */
  stop(killAfterMs = 30_000): Promise<Map<string, number | null>> {
    this.stopping ??= (async () => {
      const codes = new Map<string, number | null>();
      const order = [...this.replicas].sort(
        (a, b) => Number(b.entry.name === 'gateway') - Number(a.entry.name === 'gateway'),
      );
      const gateway = order.filter((r) => r.entry.name === 'gateway');
      const stages = order.filter((r) => r.entry.name !== 'gateway');
      for (const group of [gateway, stages]) {
        await Promise.all(
          group.map(async (r) => {
            if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGTERM');
            const kill = setTimeout(() => r.child.kill('SIGKILL'), killAfterMs);
            const code = await r.exited;
            clearTimeout(kill);
            // A restarted replica reports its latest process's exit code.
            if (this.replica(r.name) === r) codes.set(r.name, code);
          }),
        );
      }
      if (this.targetsDir) rmSync(this.targetsDir, { recursive: true, force: true });
      return codes;
    })();
    return this.stopping;
  }
}

async function waitServing(channel: Channel, service: string, deadline: number): Promise<void> {
  const health = createClient(HealthDefinition, channel);
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const { status } = await health.check({ service }, { signal: AbortSignal.timeout(2_000) });
      if (status === HealthCheckResponse_ServingStatus.SERVING) return;
      last = HealthCheckResponse_ServingStatus[status] ?? String(status);
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${service} did not report SERVING in time (last: ${last})`);
}

function pipeLines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  stream.on('end', () => {
    if (buf) onLine(buf);
  });
}
