import { constants } from 'node:fs';
import { open, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import { isAbsolute, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

import { CuriaError, isCuriaError } from '@curia/errors';

/**
 * A `file://` ref opened under the allowed roots: the handle of a regular file, or (when
 * directories are accepted) of a directory. `path` names the opened object itself (on Linux
 * `/proc/self/fd/N`, so reading through it cannot be redirected by a later rename or symlink swap;
 * elsewhere the verified real path). The reader owns the handle: close it when done.
 */
export interface AllowedRef {
  readonly kind: 'file' | 'directory';
  readonly handle: FileHandle;
  /** File size in bytes (0 for a directory). */
  readonly size: number;
  readonly path: string;
  /** The request field the ref came from, for messages (never the path). */
  readonly field: string;
  /** The refusal for anything unreadable met while reading it (one message, whatever the reason). */
  readonly refuse: Refuse;
}

/** Builds the one refusal of an unreadable file (the file error, if any, as its `cause`). */
export type Refuse = (cause?: unknown) => CuriaError;

/** Options of {@link openAllowedRef}. */
export interface OpenAllowedRefOptions {
  /** The request field holding the URI, named in every message (default `uri`). */
  readonly field?: string;
  /** Accept a directory (a DICOM series) as well as a regular file. */
  readonly directories?: boolean;
}

/**
 * The one answer for a ref that cannot be read: missing, outside the roots, a symlink leaving
 * them, unreadable, not a regular file (FIFO, socket, device) or a directory where a file is
 * expected. Same status, same message, whatever the reason, so refs are no filesystem oracle.
 */
export function refNotReadable(field: string, cause?: unknown): CuriaError {
  return new CuriaError('NOT_FOUND', `${field}: the ref is not a readable file under the allowed roots`, {
    cause,
  });
}

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

/** True when `real` (a real path) lies inside one of the real roots. */
function isUnder(real: string, realRoots: readonly string[]): boolean {
  return realRoots.some((root) => {
    const rel = relative(root, real);
    return rel === '' || (!isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${sep}`));
  });
}

/**
 * Opens `path` without blocking on a FIFO (`O_NONBLOCK`; with `O_NOFOLLOW` too unless `follow`),
 * then checks the handle itself: only a regular file (or a directory when `directories`) is kept;
 * anything else is closed and refused with `refuse()`. Every file error is wrapped the
 * same way (the original stays as `cause`, never in the message).
 */
export async function openRegular(
  path: string,
  refuse: Refuse,
  options: { readonly directories?: boolean; readonly follow?: boolean } = {},
): Promise<{ handle: FileHandle; kind: 'file' | 'directory'; size: number; dev: number; ino: number }> {
  const directories = options.directories ?? false;
  let handle: FileHandle;
  try {
    handle = await open(path, OPEN_FLAGS | (options.follow ? 0 : constants.O_NOFOLLOW));
  } catch (e) {
    throw refuse(e);
  }
  try {
    const st = await handle.stat();
    if (st.isFile()) return { handle, kind: 'file', size: st.size, dev: st.dev, ino: st.ino };
    if (directories && st.isDirectory())
      return { handle, kind: 'directory', size: 0, dev: st.dev, ino: st.ino };
    throw refuse();
  } catch (e) {
    await handle.close().catch(() => undefined);
    throw isCuriaError(e) ? e : refuse(e);
  }
}

/** Where the kernel says an open handle lives (Linux), or null where `/proc/self/fd` is absent. */
async function handlePath(handle: FileHandle): Promise<string | null> {
  try {
    return await readlink(`/proc/self/fd/${handle.fd}`);
  } catch {
    return null;
  }
}

/**
 * Parses a `file://` URI and opens what it names if — and only if — it is a regular file (or a
 * directory, with `directories`) inside one of `allowedRoots` after symlinks. The check and the
 * open are one operation: the real path is opened with `O_NOFOLLOW | O_NONBLOCK`, the handle is
 * fstat'ed, and the handle's own location (`/proc/self/fd`, else the dev/ino of a fresh realpath)
 * is checked against the roots, so a swap between resolving and opening is caught.
 *
 * INVALID_ARGUMENT for a malformed or non-file URI; FAILED_PRECONDITION when no root is
 * configured (refs disabled: says nothing about the filesystem); every other failure is the single
 * {@link refNotReadable} NOT_FOUND, naming `field`, never the path or a root.
 */
export async function openAllowedRef(
  uri: string,
  allowedRoots: readonly string[],
  options: OpenAllowedRefOptions = {},
): Promise<AllowedRef> {
  const field = options.field ?? 'uri';
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new CuriaError('INVALID_ARGUMENT', `${field} is not a valid URI; expected file:///absolute/path`);
  }
  if (url.protocol !== 'file:') {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${field}: scheme '${url.protocol.replace(/:$/, '')}' is not supported; only file:// is`,
    );
  }
  if (url.host !== '' && url.host !== 'localhost') {
    throw new CuriaError('INVALID_ARGUMENT', `${field}: file:// URIs must not name a remote host`);
  }
  if (allowedRoots.length === 0) {
    throw new CuriaError('FAILED_PRECONDITION', 'refs are disabled on this server (no allowed roots)');
  }
  let path: string;
  try {
    path = fileURLToPath(url);
  } catch {
    throw new CuriaError('INVALID_ARGUMENT', `${field} is not a valid file:// path`);
  }
  const realRoots: string[] = [];
  for (const root of allowedRoots) {
    try {
      realRoots.push(await realpath(root));
    } catch {
      // A root that does not exist holds nothing.
    }
  }
  let real: string;
  try {
    real = await realpath(path);
  } catch (e) {
    throw refNotReadable(field, e);
  }
  if (!isUnder(real, realRoots)) throw refNotReadable(field);
  const refuse: Refuse = (cause) => refNotReadable(field, cause);
  const opened = await openRegular(real, refuse, { directories: options.directories ?? false });
  const { handle } = opened;
  try {
    const where = await handlePath(handle);
    if (where !== null) {
      if (!isUnder(where, realRoots)) throw refNotReadable(field);
      return {
        kind: opened.kind,
        handle,
        size: opened.size,
        path: `/proc/self/fd/${handle.fd}`,
        field,
        refuse,
      };
    }
    // No /proc: the real path must still resolve to the very file that was opened.
    let again: string;
    try {
      again = await realpath(real);
    } catch (e) {
      throw refNotReadable(field, e);
    }
    const st = await stat(again).catch((e: unknown) => {
      throw refNotReadable(field, e);
    });
    if (again !== real || st.dev !== opened.dev || st.ino !== opened.ino) throw refNotReadable(field);
    return { kind: opened.kind, handle, size: opened.size, path: real, field, refuse };
  } catch (e) {
    await handle.close().catch(() => undefined);
    throw e;
  }
}
