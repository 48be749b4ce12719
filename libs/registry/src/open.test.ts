import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CuriaError } from '@curia/errors';
import { VersionedStore } from '@curia/heads';
import { NOTE_CODEC, note } from '@curia/heads/testing';
import { afterEach, describe, expect, it } from 'vitest';

import { checkWritable, openHeadRegistry, setupOrFatal } from './open.js';

const dirs: string[] = [];
afterEach(async () => Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true }))));

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

describe('openHeadRegistry', () => {
  it('opens the directory store when the DSN is empty (no database), which is always writable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'curia-open-'));
    dirs.push(dir);
    const { registry, root, where } = await openHeadRegistry({
      dir,
      dsn: '  ',
      kind: 'notes',
      codec: NOTE_CODEC,
    });
    expect(registry).toBeInstanceOf(VersionedStore);
    expect(root).toBe(dir);
    expect(where).toBe(dir);
    expect(() => checkWritable(registry, 'store a note')).not.toThrow();
    expect((await registry.add('a', note('x'), { creator: 't', promote: true })).version).toBe('1');
    await registry.close();
  });

  it('an unreachable database is UNAVAILABLE naming it without its password', async () => {
    const dsn = `postgresql://curia:hunter2-secret@127.0.0.1:${await closedPort()}/curia`;
    const err = await openHeadRegistry({ dir: '/nonexistent', dsn, kind: 'notes', codec: NOTE_CODEC }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'UNAVAILABLE' });
    expect((err as Error).message).toMatch(
      /cannot connect to the head registry database \(postgresql:\/\/curia@127/,
    );
    expect((err as Error).message).not.toContain('hunter2');
    expect((err as Error).message).not.toMatch(/reads still answer/);
  });
});

describe('setupOrFatal', () => {
  const fatals: Error[] = [];
  const server = { fatal: (e: Error) => fatals.push(e) };
  afterEach(() => void fatals.splice(0));

  it("passes the setup's close hook through", async () => {
    const close = () => Promise.resolve();
    expect(await setupOrFatal('x', server, () => Promise.resolve({ store: 1, close }))).toEqual({ close });
    expect(fatals).toEqual([]);
  });

  it('turns a CuriaError into one fatal error without the chained driver error, and returns no hooks', async () => {
    const driver = new Error('driver detail that is not logged');
    const hooks = await setupOrFatal('heads', server, () =>
      Promise.reject(
        new CuriaError('UNAVAILABLE', 'cannot connect (postgresql://u@h:5432/d)', { cause: driver }),
      ),
    );
    expect(hooks).toEqual({});
    expect(fatals.map((e) => e.message)).toEqual([
      'heads cannot start: UNAVAILABLE: cannot connect (postgresql://u@h:5432/d)',
    ]);
    expect(fatals[0]!.cause).toBeUndefined();
  });

  it('rethrows anything else (a bug is not a configuration problem)', async () => {
    await expect(setupOrFatal('x', server, () => Promise.reject(new TypeError('bug')))).rejects.toThrow(
      'bug',
    );
    expect(fatals).toEqual([]);
  });
});
