import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { resolveAllowedUri } from './allowed-uri.js';

describe('resolveAllowedUri', () => {
  let base = '';
  let root = '';
  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'curia-uri-'));
    root = join(base, 'root');
    await mkdir(join(root, 'sub'), { recursive: true });
    await writeFile(join(root, 'sub', 'ct.nii.gz'), 'x');
    await writeFile(join(base, 'secret.nii'), 'x');
    await symlink(join(base, 'secret.nii'), join(root, 'escape.nii'));
  });
  afterAll(async () => {
    await rm(base, { recursive: true });
  });

  it('accepts a file inside a root and returns its real path', async () => {
    const uri = pathToFileURL(join(root, 'sub', 'ct.nii.gz')).href;
    expect(await resolveAllowedUri(uri, [root])).toMatch(/sub\/ct\.nii\.gz$/);
  });

  it('refuses .. traversal and symlinks leaving the root', async () => {
    await expect(resolveAllowedUri(`file://${root}/sub/../../secret.nii`, [root])).rejects.toMatchObject({
      code: 'PERMISSION_DENIED',
    });
    await expect(
      resolveAllowedUri(pathToFileURL(join(root, 'escape.nii')).href, [root]),
    ).rejects.toMatchObject({
      code: 'PERMISSION_DENIED',
    });
    // A sibling whose name merely starts with the root's name is outside it.
    await mkdir(`${root}2`, { recursive: true });
    await writeFile(join(`${root}2`, 'a.nii'), 'x');
    await expect(
      resolveAllowedUri(pathToFileURL(join(`${root}2`, 'a.nii')).href, [root]),
    ).rejects.toMatchObject({
      code: 'PERMISSION_DENIED',
    });
  });

  it('refuses other schemes, remote hosts, missing files and empty root lists', async () => {
    await expect(resolveAllowedUri('https://example.com/ct.nii', [root])).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await expect(resolveAllowedUri('file://otherhost/ct.nii', [root])).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await expect(resolveAllowedUri('not a uri', [root])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(resolveAllowedUri(pathToFileURL(join(root, 'nope.nii')).href, [root])).rejects.toMatchObject(
      {
        code: 'NOT_FOUND',
      },
    );
    await expect(
      resolveAllowedUri(pathToFileURL(join(root, 'sub', 'ct.nii.gz')).href, []),
    ).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
    });
  });
});
