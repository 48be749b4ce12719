import { createHash } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';

import { CuriaError } from '@curia/errors';
import {
  HEAD_NAME_RE,
  Head,
  importCuriaHead,
  loadHead,
  saveHead,
  type HeadRegistry,
  type VersionCodec,
} from '@curia/heads';
import type { common } from '@curia/proto';
import { checkWritable, openHeadRegistry, type OpenHeadRegistryOptions } from '@curia/registry';

export { HEAD_NAME_RE };

/** Service-side facts stored next to a head bundle (`service.json`); none of it is PHI. */
export interface HeadServiceMeta {
  /** Backbone the head was trained on, "name@version" ('' = unknown). */
  readonly model: string;
  readonly description: string;
  readonly unit: string;
  readonly dataset: string;
  readonly demo: boolean;
  /** Fit options as sent (defaults resolved), JSON. */
  readonly fitOptions?: Record<string, unknown>;
  /** The feature request, JSON (ts-proto shape of common.FeatureRequest). */
  readonly feature?: unknown;
  /** Slices the head reads (FitStart.requirements.slices), stored in its ts-proto shape. */
  readonly selection?: common.SliceSelection;
  readonly idempotencyKey?: string;
}

/** One stored head version. */
export interface StoredHead {
  readonly head: Head;
  readonly service: HeadServiceMeta;
}

const SERVICE_JSON = 'service.json';
const EMPTY_META: HeadServiceMeta = { model: '', description: '', unit: '', dataset: '', demo: false };

/** How a head version is stored: the head bundle plus `service.json` (also the registry's byte form). */
export const HEAD_CODEC: VersionCodec<StoredHead> = {
  save: async (dir, s) => {
    await saveHead(dir, s.head);
    await writeFile(join(dir, SERVICE_JSON), `${JSON.stringify(s.service, null, 2)}\n`);
  },
  load: async (dir) => ({ head: await loadHead(dir), service: await readServiceMeta(dir) }),
  withVersion: (s, name, version) => ({ ...s, head: renamed(s.head, name, version) }),
  // Heads are prepared once, here (attention-3d heads build their ONNX graphs).
  prepare: (s) => s.head.prepare(),
  idempotencyKey: (s) => s.service.idempotencyKey,
};

/** How to open a {@link HeadStore}: the directory, or the shared registry when `dsn` is set. */
export type HeadStoreOptions = Omit<OpenHeadRegistryOptions<StoredHead>, 'kind' | 'codec'> & {
  /** Who stores the versions this store adds (service and replica); '' = unknown. */
  readonly creator?: string;
};

/** The registry kind of Heads service heads in the shared tables (Segment uses `segment-heads`). */
export const HEADS_REGISTRY_KIND = 'heads';

/**
 * The head store of the Heads service: a {@link HeadRegistry} of {@link StoredHead}s, either the
 * filesystem `VersionedStore` (`<root>/<name>/<version>/`: the head bundle plus
 * `service.json`; one replica, no database) or the shared `PgHeadRegistry` (every replica
 * reads and writes one PostgreSQL database and hears of each other's versions through
 * LISTEN/NOTIFY). Reads answer from the registry's in-memory cache, so a version another replica
 * added or promoted is served as soon as its notification arrives, and reads keep working while the
 * database is away. Versions are immutable; `add` stores the next version, and what an
 * unversioned name resolves to changes only by `promote` (or an `add` with `promote`).
 */
export class HeadStore {
  private constructor(
    /** The registry behind the store. */
    readonly registry: HeadRegistry<StoredHead>,
    /** The store's directory (filesystem store only). */
    readonly root: string | undefined,
    /** Where the versions live, for logs: the directory, or the database without its password. */
    readonly where: string,
    /** Who stores the versions this store adds (service and replica); '' = unknown. */
    private readonly creator: string,
  ) {}

  /** Opens (creating) the filesystem store at `root` and loads every valid version; `onSkip` hears about broken ones. */
  static open(root: string, onSkip?: (where: string, err: unknown) => void): Promise<HeadStore> {
    return HeadStore.openOn({ dir: root, dsn: '', ...(onSkip ? { onSkip } : {}) });
  }

  /**
   * Opens the shared registry when `options.dsn` is set (connects, migrates the schema under the
   * registry's advisory lock, loads every version, listens), else the directory `options.dir`.
   * Throws UNAVAILABLE (database unreachable) or FAILED_PRECONDITION (migration refused), naming
   * the database without its password.
   */
  static async openOn(options: HeadStoreOptions): Promise<HeadStore> {
    const { creator = '', ...rest } = options;
    const { registry, root, where } = await openHeadRegistry({
      ...rest,
      kind: HEADS_REGISTRY_KIND,
      codec: HEAD_CODEC,
    });
    return new HeadStore(registry, root, where, creator);
  }

  /**
   * Throws at once (UNAVAILABLE, with a retry hint) while a shared registry has lost its database,
   * so a Fit is refused before any work is done for a head that could not be stored.
   */
  checkWritable(): void {
    checkWritable(this.registry, 'store a fitted head');
  }

  /** Every version of every head, sorted by name then version. */
  all(): StoredHead[] {
    return this.registry.all().map((v) => v.item);
  }

  /** The latest version of every head, sorted by name. */
  latest(): StoredHead[] {
    return this.registry.latest().map((v) => v.item);
  }

  /** The version an unversioned reference serves for every head (promoted, else latest), sorted by name. */
  resolved(): StoredHead[] {
    return this.registry.resolved().map((v) => v.item);
  }

  /** A head by name and optional version (the promoted one, else the latest, when empty); NOT_FOUND otherwise. */
  get(name: string, version = ''): StoredHead {
    return this.registry.get(name, version).item;
  }

  /** The head a previous Fit with this idempotency key created, if any. */
  byIdempotencyKey(key: string): StoredHead | undefined {
    return this.registry.byIdempotencyKey(key)?.item;
  }

  /**
   * Stores `head` as the next version of its name. The unversioned name moves to it only with
   * `promote` (or when it is the name's first version); otherwise it keeps resolving to the
   * promoted version. `caller` (the call's identity) is recorded with the version. UNAVAILABLE when
   * the shared registry's database is away, RESOURCE_EXHAUSTED past a registry quota; nothing is
   * stored then.
   */
  async add(
    head: Head,
    service: HeadServiceMeta,
    options: { readonly promote?: boolean; readonly caller?: string } = {},
  ): Promise<StoredHead> {
    const add = { creator: this.creatorFor(options.caller), promote: options.promote ?? false };
    return (await this.registry.add(head.meta.name, { head, service }, add)).item;
  }

  /**
   * Makes `name@version` what the unversioned name resolves to, on every replica (the shared
   * registry notifies them); returns it with the version that resolved before. INVALID_ARGUMENT for
   * a bad name or version, NOT_FOUND (listing the versions) for one that is not stored.
   */
  async promote(
    name: string,
    version: string,
    caller: string,
  ): Promise<{ readonly head: StoredHead; readonly previous: string | undefined }> {
    const p = await this.registry.promote(name, version, { creator: this.creatorFor(caller) });
    return { head: p.item, previous: p.previous };
  }

  /** True when `s` is what its unversioned name resolves to. */
  isPromoted(s: StoredHead): boolean {
    try {
      return this.registry.resolve(s.head.meta.name).item === s;
    } catch {
      return false;
    }
  }

  /** The version the unversioned `name` resolves to ('' when the name has none). */
  promotedVersion(name: string): string {
    try {
      return this.registry.resolve(name).version;
    } catch {
      return '';
    }
  }

  /** What the registry records as the creator: this service replica, and the caller when known. */
  private creatorFor(caller: string | undefined): string {
    if (!caller) return this.creator;
    return this.creator ? `${this.creator} for ${caller}` : caller;
  }

  /** Stops listening and reconnecting (shared registry) or waits for pending writes (filesystem). */
  close(): Promise<void> {
    return this.registry.close();
  }

  /**
   * Imports a Curia-format head folder (`dir`, optionally suffixed `#mask` for mask-pooled input)
   * unless a version imported from the same folder name with the same kind exists. Returns the
   * version. The import carries an idempotency key derived from the folder and kind, so replicas
   * starting together on a shared registry store it once. A new name's import is promoted; a
   * re-import under an existing name is stored beside it and served once promoted (PromoteHead).
   */
  async importCuria(spec: string): Promise<StoredHead> {
    const [dirPart, input] = spec.split('#') as [string, string | undefined];
    if (input !== undefined && input !== 'mask' && input !== 'cls') {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `CURIA_HEADS_IMPORT entry '${spec}': suffix must be #mask or #cls`,
      );
    }
    const dir = resolve(dirPart.trim());
    const name = basename(dir)
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .slice(0, 64);
    if (!HEAD_NAME_RE.test(name))
      throw new CuriaError('INVALID_ARGUMENT', `cannot derive a head name from folder '${dir}'`);
    // The filesystem store converts inside its own directory; a shared registry has none.
    const tmp = join(this.root ?? tmpdir(), `.import-${name}-${process.pid}-${Date.now()}`);
    try {
      const head = await importCuriaHead(dir, tmp, { input: input === 'mask' ? 'mask' : 'cls', name });
      const same = this.all().find(
        (s) =>
          s.head.meta.name === name &&
          s.head.meta.provenance.source === 'curia-import' &&
          s.head.meta.provenance.imported_from === head.meta.provenance.imported_from &&
          s.head.meta.kind === head.meta.kind,
      );
      if (same) return same;
      const key = `curia-import:${createHash('sha256')
        .update(`${name}\0${head.meta.kind}\0${head.meta.provenance.imported_from ?? ''}`)
        .digest('hex')
        .slice(0, 32)}`;
      return await this.add(head, {
        ...EMPTY_META,
        description: `Imported Curia head (${head.meta.kind})`,
        idempotencyKey: key,
      });
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
}

function renamed(head: Head, name: string, version: string): Head {
  if (head.meta.name === name && head.meta.version === version) return head;
  return new Head({ ...head.meta, name, version }, head.weights);
}

async function readServiceMeta(dir: string): Promise<HeadServiceMeta> {
  let text: string;
  try {
    text = await readFile(join(dir, SERVICE_JSON), 'utf8');
  } catch {
    return EMPTY_META;
  }
  return { ...EMPTY_META, ...(JSON.parse(text) as Partial<HeadServiceMeta>) };
}
