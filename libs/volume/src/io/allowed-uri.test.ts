import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openVolume } from '../volume.js';
import { openAllowedRef, type AllowedRef } from './allowed-uri.js';

const REFUSED = { code: 'NOT_FOUND', message: 'f: the ref is not a readable file under the allowed roots' };

describe('openAllowedRef', () => {
  let base = '';
  let root = '';
  const uriOf = (...parts: string[]): string => pathToFileURL(join(...parts)).href;
  const open = (uri: string, directories = false): Promise<AllowedRef> =>
    openAllowedRef(uri, [root], { field: 'f', directories });

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'curia-uri-'));
    root = join(base, 'root');
    await mkdir(join(root, 'sub'), { recursive: true });
    await writeFile(join(root, 'sub', 'ct.nii.gz'), 'xyz');
    await writeFile(join(base, 'secret.nii'), 'x');
    await symlink(join(base, 'secret.nii'), join(root, 'escape.nii'));
    await symlink(join(root, 'sub', 'ct.nii.gz'), join(root, 'inside-link.nii.gz'));
    execFileSync('mkfifo', [join(root, 'fifo.nii')]);
    await mkdir(`${root}2`, { recursive: true });
    await writeFile(join(`${root}2`, 'a.nii'), 'x');
  });
  afterAll(async () => {
    await rm(base, { recursive: true });
  });

  it('opens a regular file under a root (also through a symlink staying inside it)', async () => {
    for (const uri of [uriOf(root, 'sub', 'ct.nii.gz'), uriOf(root, 'inside-link.nii.gz')]) {
      const ref = await open(uri);
      try {
        expect(ref.kind).toBe('file');
        expect(ref.size).toBe(3);
        expect((await ref.handle.readFile()).toString()).toBe('xyz');
      } finally {
        await ref.handle.close();
      }
    }
  });

  it('opens a directory only when directories are accepted', async () => {
    const ref = await open(uriOf(root, 'sub'), true);
    expect(ref.kind).toBe('directory');
    await ref.handle.close();
    await expect(open(uriOf(root, 'sub'))).rejects.toMatchObject(REFUSED);
  });

  it('gives missing, outside, escaping, FIFO and directory-for-a-file refs one status and message', async () => {
    const refused = [
      uriOf(root, 'nope.nii'), // missing
      uriOf(base, 'secret.nii'), // outside
      `file://${root}/sub/../../secret.nii`, // .. traversal
      uriOf(root, 'escape.nii'), // symlink leaving the root
      uriOf(`${root}2`, 'a.nii'), // a sibling whose name starts with the root's
      uriOf(root, 'fifo.nii'), // FIFO: refused at once, not waited on
      uriOf(root, 'sub'), // a directory where a file is expected
      uriOf('/nonexistent-dir/x.nii'), // missing outside
    ];
    for (const uri of refused) {
      const t0 = performance.now();
      const err = await open(uri).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, uri).toMatchObject(REFUSED);
      expect(performance.now() - t0).toBeLessThan(2000);
    }
  });

  it('refuses an unreadable file the same way (skipped as root, whom chmod does not stop)', async (ctx) => {
    if (process.getuid?.() === 0) {
      console.log('skipped: running as root, chmod 000 does not stop root from reading');
      ctx.skip();
      return;
    }
    const p = join(root, 'locked.nii');
    await writeFile(p, 'x');
    await chmod(p, 0o000);
    await expect(open(uriOf(p))).rejects.toMatchObject(REFUSED);
  });

  it('openVolume reads a ref and closes it; a FIFO (ref, path or in a series directory) is never waited on', async () => {
    const dir = join(root, 'series');
    await mkdir(dir);
    execFileSync('mkfifo', [join(dir, 'pipe.dcm')]);
    await writeFile(join(dir, 'README'), 'not DICOM');
    const ref = await open(uriOf(dir), true);
    await expect(openVolume({ kind: 'ref', ref })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'f: the directory contains no DICOM Part 10 files',
    });
    await expect(ref.handle.stat()).rejects.toThrow(); // closed
    await expect(openVolume({ kind: 'path', path: join(root, 'fifo.nii') })).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: 'the volume path does not exist or is not a readable file',
    });
  });

  it('refuses other schemes and remote hosts as INVALID_ARGUMENT, and says when refs are disabled', async () => {
    await expect(open('https://example.com/ct.nii')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(open('file://otherhost/ct.nii')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(open('not a uri')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(openAllowedRef(uriOf(root, 'sub', 'ct.nii.gz'), [])).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: 'refs are disabled on this server (no allowed roots)',
    });
  });
});
