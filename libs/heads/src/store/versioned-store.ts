import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { CuriaError } from '@curia/errors';

/** Names of stored heads: lowercase [a-z0-9-], 1..64 characters. */
export const HEAD_NAME_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** Orders versions: decimal integers numerically, then other strings lexically. */
export function compareVersions(a: string, b: string): number {
  const na = /^\d+$/.test(a) ? Number(a) : NaN;
  const nb = /^\d+$/.test(b) ? Number(b) : NaN;
  if (!Number.isNaN(na) && !Number.isNaN(nb)) return na - nb;
  if (!Number.isNaN(na)) return -1;
  if (!Number.isNaN(nb)) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** How a {@link VersionedStore} reads, writes and prepares one kind of item. */
export interface VersionCodec<T> {
  /** Writes the item's files into `dir` (a fresh directory). */
  save(dir: string, item: T): Promise<void>;
  /** Reads the version stored in `dir` as `name@version`. */
  load(dir: string, name: string, version: string): Promise<T>;
  /** The item as `name@version` (items carry their own name and version). */
  withVersion(item: T, name: string, version: string): T;
  /** Readies an item before it is served (e.g. builds its inference graphs). */
  prepare?(item: T): Promise<void>;
  /** The idempotency key the item was stored under, if any. */
  idempotencyKey?(item: T): string | undefined;
}

/** One stored version. */
export interface Versioned<T> {
  readonly name: string;
  readonly version: string;
  readonly item: T;
}

/**
 * A store of named, immutable versions on disk (`<root>/<name>/<version>/`), mirrored in memory.
 * `add` writes the next integer version atomically (temp dir + rename) and serves it at once;
 * adds are serialised, so concurrent adds of one name get distinct versions. An idempotency key
 * finds the version stored under it.
 */
export class VersionedStore<T> {
  private readonly items = new Map<string, Map<string, Versioned<T>>>();
  private readonly byKey = new Map<string, Versioned<T>>();
  private saving: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly root: string,
    private readonly codec: VersionCodec<T>,
  ) {}

  /** Opens (creating) the store and loads every valid version; `onSkip` hears about broken ones. */
  static async open<T>(
    root: string,
    codec: VersionCodec<T>,
    onSkip?: (dir: string, err: unknown) => void,
  ): Promise<VersionedStore<T>> {
    const store = new VersionedStore(resolve(root), codec);
    await mkdir(store.root, { recursive: true });
    for (const name of await subdirs(store.root)) {
      if (!HEAD_NAME_RE.test(name)) continue;
      for (const version of await subdirs(join(store.root, name))) {
        const dir = join(store.root, name, version);
        try {
          const item = codec.withVersion(await codec.load(dir, name, version), name, version);
          await codec.prepare?.(item);
          store.put({ name, version, item });
        } catch (e) {
          onSkip?.(dir, e);
        }
      }
    }
    return store;
  }

  private put(v: Versioned<T>): void {
    let versions = this.items.get(v.name);
    if (!versions) this.items.set(v.name, (versions = new Map<string, Versioned<T>>()));
    versions.set(v.version, v);
    const key = this.codec.idempotencyKey?.(v.item);
    if (key) this.byKey.set(key, v);
  }

  private versionsOf(name: string): Versioned<T>[] {
    const m = this.items.get(name);
    return m ? [...m.values()].sort((a, b) => compareVersions(a.version, b.version)) : [];
  }

  /** Every version of every name, sorted by name then version. */
  all(): Versioned<T>[] {
    return [...this.items.keys()].sort().flatMap((n) => this.versionsOf(n));
  }

  /** The latest version of every name, sorted by name. */
  latest(): Versioned<T>[] {
    return [...this.items.keys()].sort().map((n) => this.versionsOf(n).at(-1)!);
  }

  /** A version by name (latest when `version` is empty); NOT_FOUND names what exists. */
  get(name: string, version = '', what = 'head'): Versioned<T> {
    const versions = this.versionsOf(name);
    if (versions.length === 0) throw new CuriaError('NOT_FOUND', `no ${what} named '${name}'`);
    if (!version) return versions.at(-1)!;
    const hit = this.items.get(name)?.get(version);
    if (!hit) {
      throw new CuriaError(
        'NOT_FOUND',
        `${what} '${name}' has no version '${version}' (versions: ${versions.map((v) => v.version).join(', ')})`,
      );
    }
    return hit;
  }

  /** The version stored under this idempotency key, if any. */
  byIdempotencyKey(key: string): Versioned<T> | undefined {
    return this.byKey.get(key);
  }

  /** Stores `item` as the next version of `name` (max integer version + 1, or 1) and serves it. */
  add(name: string, item: T): Promise<Versioned<T>> {
    if (!HEAD_NAME_RE.test(name)) {
      return Promise.reject(
        new CuriaError('INVALID_ARGUMENT', `name '${name}' must match ${HEAD_NAME_RE.source}`),
      );
    }
    const run = this.saving.then(async () => {
      const ints = this.versionsOf(name)
        .map((v) => v.version)
        .filter((v) => /^\d+$/.test(v))
        .map(Number);
      const version = String(ints.length ? Math.max(...ints) + 1 : 1);
      const stored: Versioned<T> = { name, version, item: this.codec.withVersion(item, name, version) };
      await this.codec.prepare?.(stored.item);
      const dir = join(this.root, name, version);
      const tmp = join(this.root, name, `.tmp-${version}-${process.pid}-${Date.now()}`);
      try {
        await mkdir(tmp, { recursive: true });
        await this.codec.save(tmp, stored.item);
        await rename(tmp, dir);
      } catch (e) {
        await rm(tmp, { recursive: true, force: true });
        throw e;
      }
      this.put(stored);
      return stored;
    });
    this.saving = run.catch(() => undefined);
    return run;
  }
}

async function subdirs(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
}
