import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';

import {
  ClientError,
  createCuriaChannel,
  Status,
  type Channel,
  type common,
  type CuriaClientOptions,
} from '@curia/client';
import type { Command } from 'commander';
import { CuriaError, isCuriaError, type ErrorCode } from '@curia/errors';

/** commander's accumulator of a repeatable option. */
export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** Fails with `code` (INVALID_ARGUMENT by default) naming `flag` unless `path` exists. */
export async function mustExist(
  path: string,
  flag: string,
  code: ErrorCode = 'INVALID_ARGUMENT',
): Promise<void> {
  try {
    await stat(path);
  } catch {
    throw new CuriaError(code, `${flag} '${path}' does not exist or is not readable`);
  }
}

/**
 * Prints an error the way the service commands do, and exits: a gRPC failure as
 * `curia CMD: STATUS: details` (exit 1: the server said no), a local CuriaError as
 * `curia CMD: message` (exit 2: bad use), with its code first when `withCode` is set. Anything
 * else is rethrown (a bug: main prints it and exits 1).
 */
export function failCommand(cmd: string, err: unknown, options: { readonly withCode?: boolean } = {}): never {
  if (err instanceof ClientError) {
    process.stderr.write(`curia ${cmd}: ${Status[err.code]}: ${err.details}\n`);
    process.exit(1);
  }
  if (isCuriaError(err)) {
    process.stderr.write(`curia ${cmd}: ${options.withCode ? `${err.code}: ` : ''}${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

/**
 * A one-line progress bar on stderr, `stage [####.....] done/total`, redrawn in place; only on a
 * terminal and when `enabled` (not with --json). `end` finishes the line.
 */
export function stderrProgressBar(enabled: boolean): {
  readonly onProgress: (p: common.Progress) => void;
  readonly end: () => void;
} {
  const tty = enabled && process.stderr.isTTY;
  return {
    onProgress: (p) => {
      if (!tty || p.total === 0) return;
      const width = 30;
      const filled = Math.round((p.done / p.total) * width);
      process.stderr.write(
        `\r${p.stage.padEnd(10)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.done}/${p.total}`,
      );
    },
    end: () => {
      if (tty) process.stderr.write('\n');
    },
  };
}

/** Options of commands that call a server: TLS and a bearer token. */
export interface ConnectionOptions {
  readonly tlsCa?: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly tokenFile?: string;
}

/** Adds `--tls-ca`, `--tls-cert`, `--tls-key` and `--token-file` to a command that calls a server. */
export function addConnectionOptions(cmd: Command): Command {
  return cmd
    .option('--tls-ca <file>', 'dial with TLS, verifying the server against this CA bundle (PEM)')
    .option('--tls-cert <file>', 'client certificate (PEM) to present (mutual TLS)')
    .option('--tls-key <file>', 'private key (PEM) of --tls-cert')
    .option('--token-file <file>', 'bearer token (JWT) to send; default: the CURIA_TOKEN variable');
}

/** A channel to `target` with the TLS settings of `o` (plaintext without `--tls-ca`). */
export function openChannel(target: string, o: ConnectionOptions): Channel {
  if (Boolean(o.tlsCert) !== Boolean(o.tlsKey)) {
    throw new CuriaError('INVALID_ARGUMENT', '--tls-cert and --tls-key go together');
  }
  if ((o.tlsCert || o.tlsKey) && !o.tlsCa) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      '--tls-cert needs --tls-ca (the CA that signed the server certificate)',
    );
  }
  return createCuriaChannel(
    target,
    o.tlsCa
      ? {
          tls: {
            caFile: o.tlsCa,
            ...(o.tlsCert && o.tlsKey ? { certFile: o.tlsCert, keyFile: o.tlsKey } : {}),
          },
        }
      : {},
  );
}

/** Client options carrying the bearer token of `--token-file` or `CURIA_TOKEN`, if any. */
export function clientOptions(o: ConnectionOptions): CuriaClientOptions {
  const token = o.tokenFile ? readFileSync(o.tokenFile, 'utf8').trim() : process.env.CURIA_TOKEN?.trim();
  return token ? { bearerToken: token } : {};
}
