import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Locates the read-only `shared/` ground-truth folder that sits beside the project checkout
 * (`CURIA_SHARED_DIR` overrides). Returns null when it is absent.
 */
export function sharedDir(): string | null {
  const env = process.env.CURIA_SHARED_DIR;
  if (env) return existsSync(env) ? resolve(env) : null;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, '.ci'))) {
      const candidate = resolve(dir, '..', 'shared');
      return existsSync(join(candidate, 'README.md')) ? candidate : null;
    }
    dir = dirname(dir);
  }
  return null;
}

/**
 * For tests that need ground truth: returns the path of `rel` inside shared/, or null after
 * printing why the test skips. Under `CI=true` a missing file is an error, never a skip.
 */
export function sharedPathOrSkip(rel: string): string | null {
  const dir = sharedDir();
  const path = dir ? join(dir, rel) : null;
  if (path && existsSync(path)) return path;
  const reason = `shared ground truth '${rel}' not found beside the project (set CURIA_SHARED_DIR)`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI requires it`);
  console.warn(`SKIP: ${reason}`);
  return null;
}
