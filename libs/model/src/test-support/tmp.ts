import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh temp directory and its cleanup, for tests. */
export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `curia-model-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Largest absolute elementwise difference (throws on length mismatch). */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Expects `fn` to reject with a CuriaError of `code` whose message matches `re`. */
export async function expectCuriaError(fn: () => Promise<unknown>, code: string, re?: RegExp): Promise<void> {
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  const e = err as { code?: string; message?: string } | undefined;
  if (!e || e.code !== code)
    throw new Error(`expected CuriaError ${code}, got ${String(e?.code)}: ${String(e?.message)}`);
  if (re && !re.test(e.message ?? '')) throw new Error(`message '${e.message}' does not match ${String(re)}`);
}
