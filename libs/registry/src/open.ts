import { isCuriaError } from '@curia/errors';
import { VersionedStore, type HeadRegistry } from '@curia/heads';

import { PgHeadRegistry, redactDsn, type PgHeadRegistryOptions } from './pg-registry.js';

/**
 * What a service needs to open its head registry: the PostgreSQL registry's options, plus the
 * directory of the filesystem store used when `dsn` is empty.
 */
export type OpenHeadRegistryOptions<T> = PgHeadRegistryOptions<T> & {
  /** The filesystem store's root, used when `dsn` is empty. */
  readonly dir: string;
};

/** An open head registry and where it lives (the directory, or the database without its password). */
export interface OpenedHeadRegistry<T> {
  readonly registry: HeadRegistry<T>;
  /** The filesystem store's directory; undefined for the shared registry. */
  readonly root: string | undefined;
  readonly where: string;
}

/**
 * Opens the shared {@link PgHeadRegistry} when `dsn` is set, else the filesystem
 * {@link VersionedStore} at `dir` (the embedded default: no database). Throws what
 * `PgHeadRegistry.open` throws (UNAVAILABLE, FAILED_PRECONDITION), never naming the password.
 */
export async function openHeadRegistry<T>(
  options: OpenHeadRegistryOptions<T>,
): Promise<OpenedHeadRegistry<T>> {
  const { dir, ...pg } = options;
  const dsn = pg.dsn.trim();
  if (!dsn) {
    const store = await VersionedStore.open(dir, pg.codec, pg.onSkip);
    return { registry: store, root: store.root, where: store.root };
  }
  const registry = await PgHeadRegistry.open<T>({ ...pg, dsn });
  return { registry, root: undefined, where: redactDsn(dsn) };
}

/**
 * Throws at once what a write to `registry` would throw now (UNAVAILABLE while a shared registry
 * has lost its database), so a service can refuse a Fit before reading or computing anything.
 * The filesystem store is always writable.
 */
export function checkWritable(registry: HeadRegistry<unknown>, what: string): void {
  if (registry instanceof PgHeadRegistry) registry.checkWritable(what);
}

/**
 * A service process's `setup` when its head store may be the shared registry: runs `setup`; when it
 * throws a CuriaError (the registry cannot be opened — database unreachable, password refused:
 * UNAVAILABLE; migration refused: FAILED_PRECONDITION — or a startup import is refused), hands
 * `server.fatal` one error, `<service> cannot start: <code>: <message>`, and returns no hooks.
 * Under the kit's `runService` that is health NOT_SERVING, one error log line, a drain and exit 1:
 * the orchestrator's restart backoff is the retry. The error is new, without the driver's error
 * chained to it, and registry messages never hold the DSN's password.
 */
export async function setupOrFatal<H extends { readonly close?: () => Promise<void> }>(
  service: string,
  server: { fatal(err: Error): void },
  setup: () => Promise<H>,
): Promise<{ close?: () => Promise<void> }> {
  try {
    const { close } = await setup();
    return close ? { close } : {};
  } catch (e) {
    if (!isCuriaError(e)) throw e;
    server.fatal(new Error(`${service} cannot start: ${e.code}: ${e.message}`));
    return {};
  }
}
