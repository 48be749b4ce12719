import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import {
  aliasOnAdd,
  CachedHeadRegistry,
  checkHeadName,
  checkPromoteVersion,
  HEAD_NAME_RE,
  type AddOptions,
  type Promoted,
  type VersionCodec,
  type Versioned,
} from './registry.js';

export * from './registry.js';

/** The promoted version of a name: `<root>/<name>/.alias.json`, replaced atomically. */
const ALIAS_FILE = '.alias.json';
/** Who stored a version and when: `<root>/<name>/<version>/.registry.json`. */
const PROVENANCE_FILE = '.registry.json';

/**
 * A store of named, immutable versions on disk (`<root>/<name>/<version>/`), mirrored in memory:
 * the embedded, single-replica {@link HeadRegistry}. `add` writes the next integer version
 * atomically (temp dir + rename); adds and promotions are serialised, so concurrent adds of one
 * name get distinct versions. `promote` (or `add` with `promote`, or a name's first version) writes
 * `<name>/.alias.json` atomically (temp file + rename); a name without one (a store written before
 * promotion was explicit) resolves to its latest version until its next add pins the alias there
 * ({@link aliasOnAdd}). An idempotency key finds the version stored under it.
 */
export class VersionedStore<T> extends CachedHeadRegistry<T> {
  private saving: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly root: string,
    private readonly codec: VersionCodec<T>,
  ) {
    super(codec);
  }

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
          store.cache.put({ name, version, item, ...(await readProvenance(dir)) });
        } catch (e) {
          onSkip?.(dir, e);
        }
      }
      const aliasPath = join(store.root, name, ALIAS_FILE);
      try {
        const alias = JSON.parse(await readFile(aliasPath, 'utf8')) as { version?: unknown };
        if (typeof alias.version === 'string' && store.cache.has(name, alias.version)) {
          store.cache.setAlias(name, alias.version);
        } else {
          onSkip?.(
            aliasPath,
            new Error(`alias names version '${String(alias.version)}', which is not stored`),
          );
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') onSkip?.(aliasPath, e);
      }
    }
    return store;
  }

  close(): Promise<void> {
    return this.saving.then(() => undefined);
  }

  /**
   * Stores `item` as the next version of `name` (max integer version + 1, or 1); the unversioned
   * name moves to it only with `promote`, or when it is the name's first version ({@link aliasOnAdd}).
   */
  async add(name: string, item: T, options?: AddOptions): Promise<Versioned<T>> {
    checkHeadName(name);
    return this.serialised(async () => {
      const existing = this.cache.versionsOf(name);
      const plan = aliasOnAdd(
        {
          latest: existing.length ? this.cache.resolve(name).version : undefined,
          alias: this.cache.promoted(name),
        },
        options?.promote ?? false,
      );
      // Pinned before the new version lands: a crash in between leaves the old answer in place.
      if (plan.pin !== undefined) await this.writeAlias(name, plan.pin, options?.creator ?? '');
      const ints = this.cache
        .versionsOf(name)
        .map((v) => v.version)
        .filter((v) => /^\d+$/.test(v))
        .map(Number);
      const version = String(ints.length ? Math.max(...ints) + 1 : 1);
      const creator = options?.creator ?? '';
      const createdAt = new Date().toISOString();
      const stored: Versioned<T> = {
        name,
        version,
        item: this.codec.withVersion(item, name, version),
        creator,
        createdAt,
      };
      await this.codec.prepare?.(stored.item);
      const dir = join(this.root, name, version);
      const tmp = join(this.root, name, `.tmp-${version}-${process.pid}-${Date.now()}`);
      try {
        await mkdir(tmp, { recursive: true });
        await this.codec.save(tmp, stored.item);
        await writeFile(join(tmp, PROVENANCE_FILE), `${JSON.stringify({ creator, createdAt })}\n`);
        await rename(tmp, dir);
      } catch (e) {
        await rm(tmp, { recursive: true, force: true });
        throw e;
      }
      this.cache.put(stored);
      if (plan.promoteNew) await this.writeAlias(name, version, creator);
      this.cache.emit({ kind: 'version', name, version });
      if (plan.promoteNew) this.cache.emit({ kind: 'promote', name, version });
      return stored;
    });
  }

  /** Points `name`'s alias at `version` (which must exist), written atomically. */
  promote(name: string, version: string, options: { readonly creator: string }): Promise<Promoted<T>> {
    return this.serialised(async () => {
      checkHeadName(name);
      checkPromoteVersion(version);
      const target = this.cache.get(name, version);
      const previous = this.cache.resolve(name).version;
      await this.writeAlias(name, version, options.creator);
      if (previous !== version) this.cache.emit({ kind: 'promote', name, version });
      return { ...target, previous };
    });
  }

  private async writeAlias(name: string, version: string, creator: string): Promise<void> {
    const path = join(this.root, name, ALIAS_FILE);
    const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
    try {
      await writeFile(tmp, `${JSON.stringify({ version, creator, promotedAt: new Date().toISOString() })}\n`);
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    this.cache.setAlias(name, version);
  }

  private serialised<R>(fn: () => Promise<R>): Promise<R> {
    const run = this.saving.then(fn);
    this.saving = run.catch(() => undefined);
    return run;
  }
}

async function readProvenance(dir: string): Promise<{ creator?: string; createdAt?: string }> {
  try {
    const p = JSON.parse(await readFile(join(dir, PROVENANCE_FILE), 'utf8')) as Record<string, unknown>;
    return {
      ...(typeof p.creator === 'string' ? { creator: p.creator } : {}),
      ...(typeof p.createdAt === 'string' ? { createdAt: p.createdAt } : {}),
    };
  } catch {
    return {};
  }
}

async function subdirs(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
}
