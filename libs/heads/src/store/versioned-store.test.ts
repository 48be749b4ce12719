import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  decodeItem,
  encodeItem,
  packFiles,
  unpackFiles,
  VersionedStore,
  type RegistryChange,
} from './versioned-store.js';
import { NOTE_CODEC, note } from '../testing.js';

describe('VersionedStore as a head registry (filesystem, one replica)', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'curia-vstore-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('an add without promote leaves the unversioned name where it was; promote moves it, across a reopen', async () => {
    const store = await VersionedStore.open(root, NOTE_CODEC);
    const changes: RegistryChange[] = [];
    store.onChange((c) => changes.push(c));
    await store.add('a', note('one'), { creator: 'test' });
    expect(store.promoted('a')).toBe('1'); // a new name's first version is promoted
    await store.add('a', note('two'), { creator: 'test' });
    expect(store.promoted('a')).toBe('1');
    expect(store.resolve('a').version).toBe('1');
    expect(store.get('a').version).toBe('1');
    expect(store.latest().map((v) => v.version)).toEqual(['2']);

    const p = await store.promote('a', '2', { creator: 'ops' });
    expect([p.item.text, p.previous]).toEqual(['two', '1']);
    expect(store.resolve('a').version).toBe('2');
    expect(store.get('a', '').item.text).toBe('two');
    const back = await store.promote('a', '1', { creator: 'ops' });
    expect([back.item.text, back.previous]).toEqual(['one', '2']);
    expect(store.resolved().map((v) => v.version)).toEqual(['1']);

    const three = await store.add('a', note('three'), { creator: 'fit', promote: true });
    expect(three.version).toBe('3');
    expect(store.resolve('a').version).toBe('3');
    expect(changes).toEqual([
      { kind: 'version', name: 'a', version: '1' },
      { kind: 'promote', name: 'a', version: '1' },
      { kind: 'version', name: 'a', version: '2' },
      { kind: 'promote', name: 'a', version: '2' },
      { kind: 'promote', name: 'a', version: '1' },
      { kind: 'version', name: 'a', version: '3' },
      { kind: 'promote', name: 'a', version: '3' },
    ]);
    await store.promote('a', '2', { creator: 'ops' });
    await store.close();

    // The alias is a small file replaced atomically: no temp files remain beside it.
    expect((await readdir(join(root, 'a'))).sort()).toEqual(['.alias.json', '1', '2', '3']);
    const again = await VersionedStore.open(root, NOTE_CODEC);
    expect(again.resolve('a').version).toBe('2');
    expect(again.get('a', '3').creator).toBe('fit');
    expect(again.get('a', '3').createdAt).toMatch(/^\d{4}-/);
  });

  it('refuses to promote a version that does not exist, and keeps the alias', async () => {
    const store = await VersionedStore.open(root, NOTE_CODEC);
    await store.add('a', note('one'), { creator: 't', promote: true });
    await expect(store.promote('a', '7', { creator: 't' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(store.promote('b', '1', { creator: 't' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    for (const bad of ['', '../1', '1 2']) {
      await expect(store.promote('a', bad, { creator: 't' })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      });
    }
    await expect(store.promote('a', '7', { creator: 't' })).rejects.toThrow(/versions: 1\b/);
    expect(store.resolve('a').version).toBe('1');
  });

  it('a store written before promotion was explicit: the next add pins the alias to what resolved, so nothing flips', async () => {
    const store = await VersionedStore.open(root, NOTE_CODEC);
    await store.add('a', note('one'), { creator: 't' });
    await store.add('a', note('two'), { creator: 't', promote: true });
    await store.close();
    await rm(join(root, 'a', '.alias.json'));
    const legacy = await VersionedStore.open(root, NOTE_CODEC);
    expect([legacy.promoted('a'), legacy.resolve('a').version]).toEqual([undefined, '2']);
    expect((await legacy.add('a', note('three'), { creator: 't' })).version).toBe('3');
    expect([legacy.promoted('a'), legacy.resolve('a').version]).toEqual(['2', '2']);
    await legacy.close();
    expect((await VersionedStore.open(root, NOTE_CODEC)).resolve('a').version).toBe('2');
  });

  it('ignores an alias naming a missing version (resolves to the latest) and reports it', async () => {
    const store = await VersionedStore.open(root, NOTE_CODEC);
    await store.add('a', note('one'));
    await store.add('a', note('two'));
    await writeFile(join(root, 'a', '.alias.json'), JSON.stringify({ version: '9' }));
    const skipped: string[] = [];
    const again = await VersionedStore.open(root, NOTE_CODEC, (p) => skipped.push(p));
    expect(again.resolve('a').version).toBe('2');
    expect(skipped).toEqual([join(root, 'a', '.alias.json')]);
  });

  it('gives concurrent adds distinct consecutive versions and finds idempotency keys', async () => {
    const store = await VersionedStore.open(root, NOTE_CODEC);
    const added = await Promise.all([1, 2, 3, 4].map((i) => store.add('a', note(`n${i}`, `k${i}`))));
    expect(added.map((v) => v.version).sort()).toEqual(['1', '2', '3', '4']);
    expect(store.byIdempotencyKey('k3')?.item.text).toBe('n3');
    await expect(store.add('Bad', note('x'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('encodes items to files and back through the codec directory form', async () => {
    const files = await encodeItem(NOTE_CODEC, { ...note('hi'), name: 'a', version: '1' });
    expect([...files.keys()]).toEqual(['note.json']);
    const packed = packFiles(new Map([...files, ['sub/x.bin', new Uint8Array([1, 2, 3])]]));
    const unpacked = unpackFiles(packed);
    expect([...unpacked.keys()]).toEqual(['note.json', 'sub/x.bin']);
    expect([...unpacked.get('sub/x.bin')!]).toEqual([1, 2, 3]);
    const back = await decodeItem(NOTE_CODEC, unpacked, 'b', '5');
    expect(back).toEqual({ name: 'b', version: '5', text: 'hi' });
    expect(() => unpackFiles(packed.subarray(0, packed.length - 1))).toThrow(/truncated/);
    await expect(
      decodeItem(NOTE_CODEC, new Map([['../x', new Uint8Array()]]), 'a', '1'),
    ).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
    });
  });
});
