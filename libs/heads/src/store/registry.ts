import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';

import { CuriaError } from '@curia/errors';

/** Names of stored heads: lowercase [a-z0-9-], 1..64 characters. */
export const HEAD_NAME_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** How a head registry reads, writes and prepares one kind of item. */
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
  /**
   * Optional byte form (file name → bytes) for registries that do not keep directories; without
   * it, {@link encodeItem}/{@link decodeItem} go through `save`/`load` in a temp directory.
   */
  encode?(item: T): Promise<Map<string, Uint8Array>>;
  decode?(files: ReadonlyMap<string, Uint8Array>, name: string, version: string): Promise<T>;
  /** Queryable facts about the item (JSON; never PHI), stored next to its bytes. */
  metadata?(item: T): Record<string, unknown>;
  /** The fit report (JSON), when the item has one. */
  fitReport?(item: T): Record<string, unknown> | undefined;
}

/** One stored version. */
export interface Versioned<T> {
  readonly name: string;
  readonly version: string;
  readonly item: T;
  /** Who stored it (a service and caller identity; '' when unknown). */
  readonly creator?: string;
  /** When it was stored (ISO 8601), when known. */
  readonly createdAt?: string;
}

/** What changed in a registry (a new version, or a promotion). */
export type RegistryChange =
  | { readonly kind: 'version'; readonly name: string; readonly version: string }
  | { readonly kind: 'promote'; readonly name: string; readonly version: string };

/** Options of {@link HeadRegistry.add}. */
export interface AddOptions {
  /** Who stores it (a service and caller identity). */
  readonly creator: string;
  /**
   * Also make it the promoted version of its name. Without it, what the unversioned name resolves
   * to does not change (see {@link aliasOnAdd}); a new name's first version is promoted anyway.
   */
  readonly promote?: boolean;
}

/** A promoted version, with the version its name resolved to before (undefined: the name had none). */
export type Promoted<T> = Versioned<T> & { readonly previous: string | undefined };

/** What storing a new version does to its name's alias: see {@link aliasOnAdd}. */
export interface AliasPlan {
  /** Point the alias at this existing version first (the one that resolves now), so nothing flips. */
  readonly pin?: string;
  /** Point the alias at the new version. */
  readonly promoteNew: boolean;
}

/**
 * The one rule every registry applies when it stores a version (so an unversioned name changes
 * only by an explicit promotion): with `promote`, the new version becomes the alias; a name's first
 * version is promoted (otherwise nothing would resolve); a name that has versions but no alias yet
 * (a store written before promotion was explicit, which resolved to its latest) first gets its
 * alias pinned to the version that resolves now (`latest`), then the new version is added beside
 * it. Registries call this with what is durable (the PostgreSQL registry: inside the transaction
 * that stores the version, so pin and add are one atomic step).
 */
export function aliasOnAdd(
  state: { readonly latest: string | undefined; readonly alias: string | undefined },
  promote: boolean,
): AliasPlan {
  if (promote || state.latest === undefined) return { promoteNew: true };
  if (state.alias === undefined) return { pin: state.latest, promoteNew: false };
  return { promoteNew: false };
}

/** Version strings a registry stores: integers from Fit, or short tags of shipped heads ("1.2.0"). */
const VERSION_RE = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/;

/** Refuses an empty or malformed version to promote (INVALID_ARGUMENT). */
export function checkPromoteVersion(version: string): void {
  if (!version) throw new CuriaError('INVALID_ARGUMENT', 'promote needs a version');
  if (!VERSION_RE.test(version)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `version '${version.slice(0, 80)}' is not a version (e.g. "2"; ${VERSION_RE.source})`,
    );
  }
}

/**
 * A registry of named heads: immutable integer versions per name, and an alias per name pointing at
 * the promoted version. Reads answer from memory; writes go to the backing store first.
 * Implemented by the filesystem `VersionedStore` (one replica) and `PgHeadRegistry` (shared).
 */
export interface HeadRegistry<T> {
  /** Every version of every name, sorted by name then version. */
  all(): Versioned<T>[];
  /** The latest version of every name, sorted by name. */
  latest(): Versioned<T>[];
  /** The promoted version of every name (the latest where none was promoted), sorted by name. */
  resolved(): Versioned<T>[];
  /** The promoted version of `name`, else its latest; NOT_FOUND names what exists. */
  resolve(name: string, what?: string): Versioned<T>;
  /** The version promoted for `name`, if one ever was. */
  promoted(name: string): string | undefined;
  /** A version by name; an empty `version` is {@link resolve}. NOT_FOUND names what exists. */
  get(name: string, version?: string, what?: string): Versioned<T>;
  /** The version stored under this idempotency key, if any. */
  byIdempotencyKey(key: string): Versioned<T> | undefined;
  /**
   * Stores `item` as the next immutable version of `name`. What the unversioned name resolves to
   * changes only with `promote` (or for a new name's first version): {@link aliasOnAdd}.
   */
  add(name: string, item: T, options?: AddOptions): Promise<Versioned<T>>;
  /**
   * Points `name`'s alias at an existing version, atomically; returns it with the version that
   * resolved before. INVALID_ARGUMENT for a malformed version, NOT_FOUND (listing the versions)
   * for one the name does not have.
   */
  promote(name: string, version: string, options: { readonly creator: string }): Promise<Promoted<T>>;
  /** Calls `cb` after each change this instance learns of (its own or another replica's); returns an unsubscribe. */
  onChange(cb: (change: RegistryChange) => void): () => void;
  /** Releases connections and timers. */
  close(): Promise<void>;
}

/** Orders versions: decimal integers numerically, then other strings lexically. */
export function compareVersions(a: string, b: string): number {
  const na = /^\d+$/.test(a) ? Number(a) : NaN;
  const nb = /^\d+$/.test(b) ? Number(b) : NaN;
  if (!Number.isNaN(na) && !Number.isNaN(nb)) return na - nb;
  if (!Number.isNaN(na)) return -1;
  if (!Number.isNaN(nb)) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Refuses a name outside {@link HEAD_NAME_RE} (INVALID_ARGUMENT). */
export function checkHeadName(name: string): void {
  if (!HEAD_NAME_RE.test(name)) {
    throw new CuriaError('INVALID_ARGUMENT', `name '${name}' must match ${HEAD_NAME_RE.source}`);
  }
}

/**
 * The versions of every name held in memory, with aliases and idempotency keys: the read side both
 * registries share. Not a store on its own; callers decide when something is durable.
 */
export class RegistryCache<T> {
  private readonly items = new Map<string, Map<string, Versioned<T>>>();
  private readonly aliases = new Map<string, string>();
  private readonly byKey = new Map<string, Versioned<T>>();
  private readonly listeners = new Set<(change: RegistryChange) => void>();

  constructor(private readonly idempotencyKey?: (item: T) => string | undefined) {}

  has(name: string, version: string): boolean {
    return this.items.get(name)?.has(version) ?? false;
  }

  put(v: Versioned<T>): void {
    let versions = this.items.get(v.name);
    if (!versions) this.items.set(v.name, (versions = new Map<string, Versioned<T>>()));
    versions.set(v.version, v);
    const key = this.idempotencyKey?.(v.item);
    if (key) this.byKey.set(key, v);
  }

  setAlias(name: string, version: string): void {
    this.aliases.set(name, version);
  }

  versionsOf(name: string): Versioned<T>[] {
    const m = this.items.get(name);
    return m ? [...m.values()].sort((a, b) => compareVersions(a.version, b.version)) : [];
  }

  names(): string[] {
    return [...this.items.keys()].sort();
  }

  all(): Versioned<T>[] {
    return this.names().flatMap((n) => this.versionsOf(n));
  }

  latest(): Versioned<T>[] {
    return this.names().map((n) => this.versionsOf(n).at(-1)!);
  }

  resolved(): Versioned<T>[] {
    return this.names().map((n) => this.resolve(n));
  }

  promoted(name: string): string | undefined {
    return this.aliases.get(name);
  }

  resolve(name: string, what = 'head'): Versioned<T> {
    const versions = this.versionsOf(name);
    if (versions.length === 0) throw new CuriaError('NOT_FOUND', `no ${what} named '${name}'`);
    const alias = this.aliases.get(name);
    return (alias === undefined ? undefined : this.items.get(name)?.get(alias)) ?? versions.at(-1)!;
  }

  get(name: string, version = '', what = 'head'): Versioned<T> {
    if (!version) return this.resolve(name, what);
    const hit = this.items.get(name)?.get(version);
    if (!hit) {
      const versions = this.versionsOf(name);
      if (versions.length === 0) throw new CuriaError('NOT_FOUND', `no ${what} named '${name}'`);
      throw new CuriaError(
        'NOT_FOUND',
        `${what} '${name}' has no version '${version}' (versions: ${versions.map((v) => v.version).join(', ')})`,
      );
    }
    return hit;
  }

  byIdempotencyKey(key: string): Versioned<T> | undefined {
    return this.byKey.get(key);
  }

  onChange(cb: (change: RegistryChange) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  emit(change: RegistryChange): void {
    for (const cb of this.listeners) {
      try {
        cb(change);
      } catch {
        // A listener's failure is its own; the registry keeps serving.
      }
    }
  }
}

/**
 * The read side of a {@link HeadRegistry}, answered from a {@link RegistryCache}: what the
 * filesystem store and the PostgreSQL registry share. Subclasses decide how writes become durable.
 */
export abstract class CachedHeadRegistry<T> implements HeadRegistry<T> {
  protected readonly cache: RegistryCache<T>;

  protected constructor(codec: VersionCodec<T>) {
    this.cache = new RegistryCache<T>(codec.idempotencyKey?.bind(codec));
  }

  all(): Versioned<T>[] {
    return this.cache.all();
  }

  latest(): Versioned<T>[] {
    return this.cache.latest();
  }

  resolved(): Versioned<T>[] {
    return this.cache.resolved();
  }

  resolve(name: string, what = 'head'): Versioned<T> {
    return this.cache.resolve(name, what);
  }

  promoted(name: string): string | undefined {
    return this.cache.promoted(name);
  }

  /** A version by name (the promoted one, else the latest, when `version` is empty); NOT_FOUND names what exists. */
  get(name: string, version = '', what = 'head'): Versioned<T> {
    return this.cache.get(name, version, what);
  }

  byIdempotencyKey(key: string): Versioned<T> | undefined {
    return this.cache.byIdempotencyKey(key);
  }

  onChange(cb: (change: RegistryChange) => void): () => void {
    return this.cache.onChange(cb);
  }

  abstract add(name: string, item: T, options?: AddOptions): Promise<Versioned<T>>;
  abstract promote(
    name: string,
    version: string,
    options: { readonly creator: string },
  ): Promise<Promoted<T>>;
  abstract close(): Promise<void>;
}

/** The item's files (relative path → bytes): the codec's `encode`, else `save` into a temp directory. */
export async function encodeItem<T>(codec: VersionCodec<T>, item: T): Promise<Map<string, Uint8Array>> {
  if (codec.encode) return codec.encode(item);
  const dir = await mkdtemp(join(tmpdir(), 'curia-encode-'));
  try {
    await codec.save(dir, item);
    const files = new Map<string, Uint8Array>();
    for (const path of await filesUnder(dir)) {
      files.set(relative(dir, path).split(sep).join('/'), await readFile(path));
    }
    return files;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The item from its files: the codec's `decode`, else `load` from a temp directory. `prepare` runs
 * before the directory is removed (a head may read its files while it readies itself).
 */
export async function decodeItem<T>(
  codec: VersionCodec<T>,
  files: ReadonlyMap<string, Uint8Array>,
  name: string,
  version: string,
): Promise<T> {
  if (codec.decode) {
    const item = codec.withVersion(await codec.decode(files, name, version), name, version);
    await codec.prepare?.(item);
    return item;
  }
  const dir = await mkdtemp(join(tmpdir(), 'curia-decode-'));
  try {
    for (const [rel, bytes] of files) {
      if (rel.split('/').some((p) => p === '..' || p === '' || p === '.')) {
        throw new CuriaError('FAILED_PRECONDITION', `stored file name '${rel}' is not a plain relative path`);
      }
      const path = join(dir, ...rel.split('/'));
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, bytes);
    }
    const item = codec.withVersion(await codec.load(dir, name, version), name, version);
    await codec.prepare?.(item);
    return item;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Packs files into one buffer: per file, u32 name length, name (UTF-8), u32 size, bytes (big-endian). */
export function packFiles(files: ReadonlyMap<string, Uint8Array>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, bytes] of [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const n = Buffer.from(name, 'utf8');
    const head = Buffer.alloc(8 + n.length);
    head.writeUInt32BE(n.length, 0);
    n.copy(head, 4);
    head.writeUInt32BE(bytes.length, 4 + n.length);
    parts.push(head, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }
  return Buffer.concat(parts);
}

/** The inverse of {@link packFiles}; FAILED_PRECONDITION when the buffer is truncated. */
export function unpackFiles(buf: Uint8Array): Map<string, Uint8Array> {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const files = new Map<string, Uint8Array>();
  let at = 0;
  const need = (n: number): void => {
    if (at + n > b.length) throw new CuriaError('FAILED_PRECONDITION', 'stored payload is truncated');
  };
  while (at < b.length) {
    need(4);
    const nl = b.readUInt32BE(at);
    at += 4;
    need(nl + 4);
    const name = b.toString('utf8', at, at + nl);
    at += nl;
    const size = b.readUInt32BE(at);
    at += 4;
    need(size);
    files.set(name, b.subarray(at, at + size));
    at += size;
  }
  return files;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}
