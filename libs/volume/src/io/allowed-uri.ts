import { realpath } from 'node:fs/promises';
import { isAbsolute, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

import { CuriaError } from '@curia/errors';

/**
 * Resolves a `file://` URI to a real path (symlinks followed) and checks that it lies inside one
 * of `allowedRoots` (also realpath'd), defeating `..` and symlink traversal. Throws
 * INVALID_ARGUMENT for a malformed or non-file URI, NOT_FOUND when the target does not exist and
 * PERMISSION_DENIED when it resolves outside every root. Messages never echo the path.
 */
export async function resolveAllowedUri(uri: string, allowedRoots: readonly string[]): Promise<string> {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new CuriaError('INVALID_ARGUMENT', 'uri is not a valid URI; expected file:///absolute/path');
  }
  if (url.protocol !== 'file:') {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `uri scheme '${url.protocol.replace(/:$/, '')}' is not supported; only file:// is`,
    );
  }
  if (url.host !== '' && url.host !== 'localhost') {
    throw new CuriaError('INVALID_ARGUMENT', 'file:// URIs must not name a remote host');
  }
  if (allowedRoots.length === 0) {
    throw new CuriaError('FAILED_PRECONDITION', 'no allowed roots are configured for file:// inputs');
  }
  let path: string;
  try {
    path = fileURLToPath(url);
  } catch {
    throw new CuriaError('INVALID_ARGUMENT', 'uri is not a valid file:// path');
  }
  let real: string;
  try {
    real = await realpath(path);
  } catch {
    throw new CuriaError('NOT_FOUND', 'the file named by uri does not exist or is not readable');
  }
  for (const root of allowedRoots) {
    let realRoot: string;
    try {
      realRoot = await realpath(root);
    } catch {
      continue;
    }
    const rel = relative(realRoot, real);
    if (rel === '' || (!isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${sep}`))) return real;
  }
  throw new CuriaError('PERMISSION_DENIED', 'uri resolves outside the allowed roots');
}
