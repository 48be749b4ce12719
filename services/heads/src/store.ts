import { readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';

import { CuriaError } from '@curia/errors';
import {
  HEAD_NAME_RE,
  Head,
  importCuriaHead,
  loadHead,
  saveHead,
  VersionedStore,
  type VersionCodec,
} from '@curia/heads';
import type { common } from '@curia/proto';

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

/**
 * The versioned head store on disk (`<root>/<name>/<version>/`: the head bundle plus
 * `service.json`), mirrored in memory: a {@link VersionedStore} of heads. Versions are immutable;
 * `add` writes the next version atomically and serves it at once. Heads whose requirements the
 * wire cannot express are refused (FAILED_PRECONDITION).
 */
export class HeadStore {
  private constructor(private readonly store: VersionedStore<StoredHead>) {}

  /** The store's directory. */
  get root(): string {
    return this.store.root;
  }

  /** Opens (creating) the store and loads every valid version; `onSkip` hears about broken ones. */
  static async open(root: string, onSkip?: (dir: string, err: unknown) => void): Promise<HeadStore> {
    return new HeadStore(await VersionedStore.open(root, HEAD_CODEC, onSkip));
  }

  /** Every version of every head, sorted by name then version. */
  all(): StoredHead[] {
    return this.store.all().map((v) => v.item);
  }

  /** The latest version of every head, sorted by name. */
  latest(): StoredHead[] {
    return this.store.latest().map((v) => v.item);
  }

  /** A head by name and optional version (latest when empty); NOT_FOUND otherwise. */
  get(name: string, version = ''): StoredHead {
    return this.store.get(name, version).item;
  }

  /** The head a previous Fit with this idempotency key created, if any. */
  byIdempotencyKey(key: string): StoredHead | undefined {
    return this.store.byIdempotencyKey(key)?.item;
  }

  /** Stores `head` as the next version of its name (max integer version + 1, or 1) and serves it. */
  async add(head: Head, service: HeadServiceMeta): Promise<StoredHead> {
    return (await this.store.add(head.meta.name, { head, service })).item;
  }

  /**
   * Imports a Curia-format head folder (`dir`, optionally suffixed `#mask` for mask-pooled input)
   * unless a version imported from the same folder name with the same kind exists. Returns the version.
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
    const tmp = join(this.root, `.import-${name}-${process.pid}-${Date.now()}`);
    try {
      const head = await importCuriaHead(dir, tmp, { input: input === 'mask' ? 'mask' : 'cls', name });
      const same = this.store
        .all()
        .map((v) => v.item)
        .find(
          (s) =>
            s.head.meta.name === name &&
            s.head.meta.provenance.source === 'curia-import' &&
            s.head.meta.provenance.imported_from === head.meta.provenance.imported_from &&
            s.head.meta.kind === head.meta.kind,
        );
      if (same) return same;
      return await this.add(head, { ...EMPTY_META, description: `Imported Curia head (${head.meta.kind})` });
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
