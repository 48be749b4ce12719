import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';

import { CuriaError } from '@curia/errors';
import { Head, importCuriaHead, loadHead, saveHead } from '@curia/heads';
import type { common } from '@curia/proto';

/** Head names accepted by Fit and import: lowercase [a-z0-9-], 1..64 characters. */
export const HEAD_NAME_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;

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

/** Orders versions: decimal integers numerically, then other strings lexically. */
export function compareVersions(a: string, b: string): number {
  const na = /^\d+$/.test(a) ? Number(a) : NaN;
  const nb = /^\d+$/.test(b) ? Number(b) : NaN;
  if (!Number.isNaN(na) && !Number.isNaN(nb)) return na - nb;
  if (!Number.isNaN(na)) return -1;
  if (!Number.isNaN(nb)) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The versioned head store on disk (`<root>/<name>/<version>/`), mirrored in memory. Versions are
 * immutable; `add` writes a new version atomically (temp dir + rename) and serves it at once.
 * Heads are prepared on load (attention-3d heads build their ONNX graphs once, here), and heads
 * whose requirements the wire cannot express are refused (FAILED_PRECONDITION).
 */
export class HeadStore {
  private readonly heads = new Map<string, Map<string, StoredHead>>();
  private readonly byKey = new Map<string, { name: string; version: string }>();
  private saving: Promise<unknown> = Promise.resolve();

  private constructor(readonly root: string) {}

  /** Opens (creating) the store and loads every valid version; `onSkip` hears about broken ones. */
  static async open(root: string, onSkip?: (dir: string, err: unknown) => void): Promise<HeadStore> {
    const store = new HeadStore(resolve(root));
    await mkdir(store.root, { recursive: true });
    for (const name of await subdirs(store.root)) {
      if (!HEAD_NAME_RE.test(name)) continue;
      for (const version of await subdirs(join(store.root, name))) {
        const dir = join(store.root, name, version);
        try {
          const head = renamed(await loadHead(dir), name, version);
          const service = await readServiceMeta(dir);
          await HeadStore.ready(head);
          store.put({ head, service });
        } catch (e) {
          onSkip?.(dir, e);
        }
      }
    }
    return store;
  }

  /** Builds the head's inference graphs. */
  private static async ready(head: Head): Promise<void> {
    await head.prepare();
  }

  private put(s: StoredHead): void {
    const { name, version } = s.head.meta;
    let versions = this.heads.get(name);
    if (!versions) this.heads.set(name, (versions = new Map<string, StoredHead>()));
    versions.set(version, s);
    if (s.service.idempotencyKey) this.byKey.set(s.service.idempotencyKey, { name, version });
  }

  /** Every version of every head, sorted by name then version. */
  all(): StoredHead[] {
    return [...this.heads.keys()].sort().flatMap((n) => this.versionsOf(n));
  }

  /** The latest version of every head, sorted by name. */
  latest(): StoredHead[] {
    return [...this.heads.keys()].sort().map((n) => {
      const v = this.versionsOf(n);
      return v[v.length - 1]!;
    });
  }

  private versionsOf(name: string): StoredHead[] {
    const m = this.heads.get(name);
    if (!m) return [];
    return [...m.values()].sort((a, b) => compareVersions(a.head.meta.version, b.head.meta.version));
  }

  /** A head by name and optional version (latest when empty); NOT_FOUND otherwise. */
  get(name: string, version = ''): StoredHead {
    const versions = this.versionsOf(name);
    if (versions.length === 0) throw new CuriaError('NOT_FOUND', `no head named '${name}'`);
    if (!version) return versions[versions.length - 1]!;
    const hit = this.heads.get(name)?.get(version);
    if (!hit) {
      throw new CuriaError(
        'NOT_FOUND',
        `head '${name}' has no version '${version}' (versions: ${versions.map((v) => v.head.meta.version).join(', ')})`,
      );
    }
    return hit;
  }

  /** The head a previous Fit with this idempotency key created, if any. */
  byIdempotencyKey(key: string): StoredHead | undefined {
    const ref = this.byKey.get(key);
    return ref ? this.heads.get(ref.name)?.get(ref.version) : undefined;
  }

  /**
   * Stores `head` as the next version of its name (max integer version + 1, or 1) and serves it.
   * Saves are serialised so concurrent Fits of one name get distinct versions.
   */
  add(head: Head, service: HeadServiceMeta): Promise<StoredHead> {
    const run = this.saving.then(async () => {
      const name = head.meta.name;
      const ints = this.versionsOf(name)
        .map((s) => s.head.meta.version)
        .filter((v) => /^\d+$/.test(v))
        .map(Number);
      const version = String(ints.length ? Math.max(...ints) + 1 : 1);
      const stored = { head: renamed(head, name, version), service };
      await HeadStore.ready(stored.head);
      const dir = join(this.root, name, version);
      const tmp = join(this.root, name, `.tmp-${version}-${process.pid}-${Date.now()}`);
      try {
        await saveHead(tmp, stored.head);
        await writeFile(join(tmp, SERVICE_JSON), `${JSON.stringify(service, null, 2)}\n`);
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
      const same = this.versionsOf(name).find(
        (s) =>
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

async function subdirs(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
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
