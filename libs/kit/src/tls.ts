import { existsSync } from 'node:fs';

import { ServerCredentials, experimental } from '@grpc/grpc-js';

import type { ClientTls } from '@curia/client';

import { ConfigError, type ServiceEnv } from './config.js';

/** Server credentials and, with TLS, a way to wait until the certificate files have been read. */
export interface ServerTls {
  readonly credentials: ServerCredentials;
  /**
   * Resolves once the certificate, key (and client CA) have been read, so the first connection
   * is not refused; rejects when they cannot be. Call the returned function once the server
   * listens (grpc-js then holds its own watch on the files).
   */
  loaded(): Promise<() => void>;
}

/**
 * Server credentials from `CURIA_TLS_*`: plaintext when no certificate is configured; otherwise
 * TLS whose certificate, key and client CA are re-read every `CURIA_TLS_RELOAD_MS`, so a rotated
 * Secret (cert-manager renewal) is served to new connections without a restart. With
 * `CURIA_TLS_CLIENT_CA_FILE` callers must present a certificate that CA signed (mTLS).
 */
export function serverTls(env: ServiceEnv): ServerTls {
  const { CURIA_TLS_CERT_FILE: cert, CURIA_TLS_KEY_FILE: key, CURIA_TLS_CLIENT_CA_FILE: ca } = env;
  if (!cert && !key) {
    return {
      credentials: ServerCredentials.createInsecure(),
      loaded: () => Promise.resolve(() => undefined),
    };
  }
  if (!cert || !key) {
    throw new ConfigError('TLS needs both CURIA_TLS_CERT_FILE and CURIA_TLS_KEY_FILE (only one is set)');
  }
  for (const [name, file] of [
    ['CURIA_TLS_CERT_FILE', cert],
    ['CURIA_TLS_KEY_FILE', key],
    ['CURIA_TLS_CLIENT_CA_FILE', ca],
  ] as const) {
    if (file && !existsSync(file)) throw new ConfigError(`${name}: no such file ${file}`);
  }
  const refreshIntervalMs = env.CURIA_TLS_RELOAD_MS;
  const identity = new experimental.FileWatcherCertificateProvider({
    certificateFile: cert,
    privateKeyFile: key,
    refreshIntervalMs,
  });
  const clientCa = ca
    ? new experimental.FileWatcherCertificateProvider({ caCertificateFile: ca, refreshIntervalMs })
    : null;
  // grpc-js's declaration names the first parameter the CA provider, but its implementation
  // passes it on as the *identity* provider (and the second as the CA): the order below is the
  // one that works, which the TLS tests pin down.
  const credentials = experimental.createCertificateProviderServerCredentials(
    identity,
    clientCa,
    clientCa !== null && env.CURIA_TLS_CLIENT_CERT === 'require',
  );
  return {
    credentials,
    loaded: async () => {
      const releases: (() => void)[] = [];
      const first = <U>(
        add: (l: (u: U | null) => void) => void,
        remove: (l: (u: U | null) => void) => void,
        what: string,
      ) =>
        new Promise<void>((resolve, reject) => {
          const listener = (update: U | null) => {
            if (update) resolve();
            else reject(new ConfigError(`cannot read the TLS ${what} files (CURIA_TLS_*)`));
          };
          add(listener);
          releases.push(() => remove(listener));
        });
      try {
        await Promise.all([
          first<experimental.IdentityCertificateUpdate>(
            (l) => identity.addIdentityCertificateListener(l),
            (l) => identity.removeIdentityCertificateListener(l),
            'certificate/key',
          ),
          ...(clientCa
            ? [
                first<experimental.CaCertificateUpdate>(
                  (l) => clientCa.addCaCertificateListener(l),
                  (l) => clientCa.removeCaCertificateListener(l),
                  'client CA',
                ),
              ]
            : []),
        ]);
      } catch (err) {
        for (const r of releases) r();
        throw err;
      }
      return () => releases.forEach((r) => r());
    },
  };
}

/**
 * TLS settings for the stage clients of a service that dials others (gateway, segment, register):
 * TLS when `CURIA_UPSTREAM_TLS_CA_FILE` is set, presenting this service's own certificate
 * (`CURIA_TLS_CERT_FILE`/`KEY_FILE`) as the client certificate, files re-read like the server's.
 */
export function upstreamTls(env: ServiceEnv): ClientTls | undefined {
  if (!env.CURIA_UPSTREAM_TLS_CA_FILE) return undefined;
  return {
    caFile: env.CURIA_UPSTREAM_TLS_CA_FILE,
    ...(env.CURIA_TLS_CERT_FILE && env.CURIA_TLS_KEY_FILE
      ? { certFile: env.CURIA_TLS_CERT_FILE, keyFile: env.CURIA_TLS_KEY_FILE }
      : {}),
    reloadMs: env.CURIA_TLS_RELOAD_MS,
  };
}
