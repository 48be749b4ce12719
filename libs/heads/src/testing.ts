import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { EmbedEngine, buildBundleFromHf } from '@curia/model';

import type { VersionCodec } from './store/registry.js';

/** A backbone for tests, opened from a bundle in its own temporary directory. */
export interface TestBackbone {
  readonly engine: EmbedEngine;
  /** The temporary directory (the bundle is its `bundle/`); tests may write beside it. */
  readonly dir: string;
  /** Closes the engine and removes the directory. */
  close(): Promise<void>;
}

/**
 * For tests: builds the Hugging Face checkpoint `hfDir` (e.g. the shared
 * `reference/dinov2/tiny-mlp`) into a bundle in a new temporary directory named after `prefix`
 * and opens it on two ORT threads.
 */
export async function openTestBackbone(hfDir: string, prefix: string): Promise<TestBackbone> {
  const dir = await mkdtemp(join(tmpdir(), `${prefix}-`));
  const remove = (): Promise<void> => rm(dir, { recursive: true, force: true });
  try {
    await buildBundleFromHf(hfDir, join(dir, 'bundle'));
    const engine = await EmbedEngine.open(join(dir, 'bundle'), { intraOpThreads: 2 });
    return {
      engine,
      dir,
      async close() {
        await engine.close();
        await remove();
      },
    };
  } catch (e) {
    await remove();
    throw e;
  }
}

/** A tiny item for registry tests: a text, stored as `note.json`. */
export interface Note {
  readonly name: string;
  readonly version: string;
  readonly text: string;
  readonly key?: string;
}

/** Stores a {@link Note} as `note.json`; its `key` is the idempotency key. */
export const NOTE_CODEC: VersionCodec<Note> = {
  save: (dir, n) => writeFile(join(dir, 'note.json'), JSON.stringify(n)),
  load: async (dir) => JSON.parse(await readFile(join(dir, 'note.json'), 'utf8')) as Note,
  withVersion: (n, name, version) => ({ ...n, name, version }),
  idempotencyKey: (n) => n.key,
};

/** A note with `text` (and an idempotency key), not yet named or versioned. */
export const note = (text: string, key?: string): Note => ({
  name: '',
  version: '',
  text,
  ...(key ? { key } : {}),
});
