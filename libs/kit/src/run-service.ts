import { descriptorSet } from '@curia/proto';
import type { z } from 'zod';

import { ConfigError, loadConfig, type ServiceEnv, type serviceEnvSchema } from './config.js';
import { exitOnSignals } from './lifecycle.js';
import { CuriaServer, type BoundPorts } from './server.js';

/** What a service's setup returns: optional warm-up before SERVING and cleanup after drain. */
export interface ServiceHooks {
  /** Runs after the listeners are bound and before health reports SERVING (model warm-up). */
  warmUp?: () => Promise<void>;
  /** Runs after the server has drained (close sessions, flush caches). */
  close?: () => Promise<void>;
}

/** Describes one service process for {@link runService}. */
export interface ServiceSpec<S extends typeof serviceEnvSchema> {
  /** Short name: `preprocess`, `embed`, … */
  readonly name: string;
  /** Environment schema (base schema extended with the service's own variables). */
  readonly schema: S;
  /** Serialized FileDescriptorSet for reflection (default: every Curia contract, `@curia/proto`'s). */
  readonly descriptorSet?: Uint8Array;
  /** Registers the service implementations on the server. */
  readonly setup: (server: CuriaServer, env: z.infer<S>) => Promise<ServiceHooks> | ServiceHooks;
}

/** Message a service process sends its launcher over the IPC channel once it listens. */
export interface ListeningMessage extends BoundPorts {
  readonly type: 'curia:listening';
  readonly service: string;
  readonly pid: number;
}

/** Exit code of a service process that cannot bind its gRPC or metrics port (EADDRINUSE). */
export const EXIT_ADDRESS_IN_USE = 3;

/** A listener that could not bind because another process holds its address. */
export interface BusyAddress {
  readonly listener: 'gRPC' | 'metrics';
  readonly host: string;
  readonly port: number;
}

/** Message a service process sends its launcher before exiting with {@link EXIT_ADDRESS_IN_USE}. */
export interface AddressInUseMessage extends BusyAddress {
  readonly type: 'curia:address-in-use';
  readonly service: string;
}

/**
 * The listener `err` (from {@link CuriaServer.start}) failed to bind because its address is taken,
 * or null for any other error. The metrics listener fails with Node's own error (code
 * EADDRINUSE); grpc-js wraps its bind errors in a plain Error whose message carries the code.
 */
export function addressInUse(err: unknown, env: ServiceEnv): BusyAddress | null {
  if (!(err instanceof Error)) return null;
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e.code === 'EADDRINUSE') {
    return {
      listener: 'metrics',
      host: e.address ?? env.CURIA_GRPC_HOST,
      port: e.port ?? env.CURIA_METRICS_PORT,
    };
  }
  if (e.message.includes('EADDRINUSE')) {
    return { listener: 'gRPC', host: env.CURIA_GRPC_HOST, port: env.CURIA_GRPC_PORT };
  }
  return null;
}

/**
 * Entry point of a service process: validates the environment (exit 2 with a message naming
 * each bad variable), builds and starts the server, warms up, reports SERVING, and drains on
 * SIGTERM/SIGINT (exit 0; a second signal forces exit 1). After {@link CuriaServer.fatal} it
 * drains and exits 1, so the orchestrator restarts it. A port held by another process is one
 * line on stderr (and an {@link AddressInUseMessage} to a launcher), exit {@link EXIT_ADDRESS_IN_USE}.
 */
export async function runService<S extends typeof serviceEnvSchema>(
  spec: ServiceSpec<S>,
): Promise<CuriaServer> {
  let env: z.infer<S>;
  try {
    env = loadConfig(spec.schema);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`curia-${spec.name}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  let server: CuriaServer;
  try {
    // The TLS, auth and audit settings are checked (files read) when the server is built.
    server = new CuriaServer({ name: spec.name, env, descriptorSet: spec.descriptorSet ?? descriptorSet() });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`curia-${spec.name}: invalid configuration: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const hooks = await spec.setup(server, env);
  let ports: BoundPorts;
  try {
    ports = await server.start();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`curia-${spec.name}: invalid configuration: ${err.message}\n`);
      process.exit(2);
    }
    const busy = addressInUse(err, env);
    if (!busy) throw err;
    process.stderr.write(
      `curia-${spec.name}: cannot listen on ${busy.host}:${busy.port} (${busy.listener}): the address is already in use\n`,
    );
    const message: AddressInUseMessage = { type: 'curia:address-in-use', service: spec.name, ...busy };
    // The launcher gets the message before the exit, so it can say which port of which service.
    return new Promise<never>(() => {
      if (process.send) process.send(message, undefined, undefined, () => process.exit(EXIT_ADDRESS_IN_USE));
      else process.exit(EXIT_ADDRESS_IN_USE);
    });
  }
  const exit = (code: number): void => {
    void (hooks.close?.() ?? Promise.resolve()).finally(() => process.exit(code));
  };
  exitOnSignals(server, exit);
  server.onFatal(() => {
    void server.shutdown().finally(() => exit(1));
  });
  const message: ListeningMessage = {
    type: 'curia:listening',
    service: spec.name,
    pid: process.pid,
    ...ports,
  };
  process.send?.(message);
  // Started by a launcher: if it goes away, drain and exit rather than linger as an orphan.
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  const t0 = performance.now();
  await hooks.warmUp?.();
  if (server.failed) return server;
  server.setServing(true);
  server.log.info({ warmUpMs: Math.round(performance.now() - t0) }, 'serving');
  return server;
}
