import type { Command } from 'commander';

import { SERVICES } from '../cluster/catalog.js';
import { LocalCluster, PortInUseError, type ReplicaEndpoint } from '../cluster/launcher.js';
import { DEMO_HEAD } from './demo-head.js';

/** Parses `--replicas embed=2,heads=2`. */
export function parseReplicas(spec: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (!spec) return out;
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [name, n] = part.split('=');
    const count = Number(n);
    if (
      !name ||
      !SERVICES.some((s) => s.name === name) ||
      !Number.isInteger(count) ||
      count < 1 ||
      count > 16
    ) {
      throw new Error(
        `bad --replicas entry '${part}': expected <service>=<1..16> with service one of ${SERVICES.map((s) => s.name).join(', ')}`,
      );
    }
    out[name] = count;
  }
  return out;
}

/** Renders the endpoint table printed once the cluster is up. */
export function endpointTable(endpoints: readonly ReplicaEndpoint[]): string {
  const rows = [
    ['replica', 'gRPC', 'metrics', 'pid'],
    ...endpoints.map((e) => [
      e.replica,
      `127.0.0.1:${e.grpcPort}`,
      `http://127.0.0.1:${e.metricsPort}/metrics`,
      String(e.pid),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** Registers `curia up`. */
export function registerUp(program: Command): void {
  program
    .command('up')
    .description('start the whole cluster locally, one OS process per service, and serve until Ctrl-C')
    .option('--replicas <list>', 'processes per service, e.g. embed=2,heads=2')
    .option('--port-offset <n>', 'add n to every default port', '0')
    .option('--dynamic-ports', 'let every process pick free ports (printed in the table)')
    .option('--log-level <level>', 'log level of the services', 'warn')
    .option('--only <services>', 'start only these services (comma-separated)')
    .option(
      '--self-check',
      'after start, analyse a generated phantom through the gateway and print each stage',
    )
    .action(
      async (opts: {
        replicas?: string;
        portOffset: string;
        dynamicPorts?: boolean;
        logLevel: string;
        only?: string;
        selfCheck?: boolean;
      }) => {
        const started = performance.now();
        process.stderr.write('curia: starting the local cluster…\n');
        const portOffset = Number(opts.portOffset);
        if (!Number.isInteger(portOffset) || portOffset < 0 || portOffset > 10_000) {
          throw new Error(`--port-offset must be an integer from 0 to 10000, got '${opts.portOffset}'`);
        }
        let cluster: LocalCluster;
        try {
          cluster = await LocalCluster.start({
            replicas: parseReplicas(opts.replicas),
            portOffset,
            ports: opts.dynamicPorts ? 'dynamic' : 'fixed',
            logLevel: opts.logLevel,
            // `curia analyze FILE` with no heads runs the demo head (once the self-check fitted it).
            serviceEnv: { heads: { CURIA_HEADS_DEFAULT: process.env.CURIA_HEADS_DEFAULT || DEMO_HEAD } },
            ...(opts.only ? { only: opts.only.split(',').map((s) => s.trim()) } : {}),
          });
        } catch (err) {
          if (!(err instanceof PortInUseError)) throw err;
          process.stderr.write(
            `curia: ${err.message}; stop it, or pick other ports with --port-offset N (e.g. --port-offset ${portOffset + 1000}) or --dynamic-ports\n`,
          );
          process.exit(3);
        }
        let stopping = false;
        const stop = (signal: string): void => {
          if (stopping) {
            process.stderr.write('curia: second signal, exiting now\n');
            process.exit(1);
          }
          stopping = true;
          process.stderr.write(`curia: ${signal}: draining every service…\n`);
          void cluster.stop().then((codes) => {
            const bad = [...codes].filter(([, c]) => c !== 0);
            process.stderr.write(
              bad.length
                ? `curia: exited with errors: ${bad.map(([n, c]) => `${n}=${c}`).join(', ')}\n`
                : 'curia: all services stopped cleanly\n',
            );
            process.exit(bad.length ? 1 : 0);
          });
        };
        process.on('SIGINT', () => stop('SIGINT'));
        process.on('SIGTERM', () => stop('SIGTERM'));
        process.stdout.write(`${endpointTable(cluster.endpoints())}\n`);
        process.stdout.write(
          `curia: ${cluster.endpoints().length} processes SERVING after ${((performance.now() - started) / 1000).toFixed(1)} s; Ctrl-C drains and stops them\n`,
        );
        if (opts.selfCheck) {
          const { selfCheck } = await import('./self-check.js');
          await selfCheck(cluster);
        }
      },
    );
}
