import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

import { isCuriaError } from '@curia/errors';

import type { PresetName } from '../architecture.js';
import { DEFAULT_ATTENTION } from '../onnx/dinov2-graph.js';
import { buildRandomBundle, presetBundleName } from './build.js';
import { loadBundle } from './load.js';
import { BUILDER_VERSION, type BundleManifest } from './manifest.js';

/** Preset and seed of the default demo bundle (hidden 192, 4 layers, 3 heads, 512 px / patch 16). */
export const DEFAULT_BUNDLE_PRESET: PresetName = 'demo';
/** Seed of the default demo bundle: every machine builds the byte-identical model. */
export const DEFAULT_BUNDLE_SEED = 0;

/** True when a cached default bundle was built by this builder with today's defaults. */
function isCurrentRecipe(m: BundleManifest): boolean {
  return (
    m.provenance.builder_version === BUILDER_VERSION &&
    m.provenance.seed === DEFAULT_BUNDLE_SEED &&
    m.provenance.preset === DEFAULT_BUNDLE_PRESET &&
    m.attention === DEFAULT_ATTENTION &&
    m.dtype === 'f32'
  );
}

/** Root of Curia's cache: `$CURIA_CACHE_DIR`, else `~/.cache/curia`. */
export function defaultCacheRoot(): string {
  return resolve(process.env.CURIA_CACHE_DIR ?? join(homedir(), '.cache', 'curia'));
}

/**
 * Returns the directory of the default demo bundle (`<cacheRoot>/bundles/curia-demo`), building it
 * first when it is missing, invalid, or was built with other defaults (builder version, seed,
 * attention implementation). The build goes to a private temp directory renamed into
 * place, so concurrent callers never observe (or corrupt) a half-written bundle: the first rename
 * wins and the others discard their copy.
 */
export async function ensureDefaultBundle(cacheRoot?: string, signal?: AbortSignal): Promise<string> {
  const bundles = join(cacheRoot ? resolve(cacheRoot) : defaultCacheRoot(), 'bundles');
  const dir = join(bundles, presetBundleName(DEFAULT_BUNDLE_PRESET));
  try {
    // The demo model is ~8 MB: verifying its hash costs milliseconds and catches a damaged cache.
    const cached = await loadBundle(dir, { signal });
    if (isCurrentRecipe(cached.manifest)) return cached.dir;
    await rm(dir, { recursive: true, force: true });
  } catch (e) {
    if (!isCuriaError(e) || (e.code !== 'NOT_FOUND' && e.code !== 'FAILED_PRECONDITION')) throw e;
    if (e.code === 'FAILED_PRECONDITION') await rm(dir, { recursive: true, force: true });
  }
  await mkdir(bundles, { recursive: true });
  const tmp = join(bundles, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await buildRandomBundle(tmp, { preset: DEFAULT_BUNDLE_PRESET, seed: DEFAULT_BUNDLE_SEED, signal });
    try {
      await rename(tmp, dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Another process renamed its copy first: keep theirs.
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return (await loadBundle(dir, { signal })).dir;
}

/**
 * A random-weight bundle of `preset` for benchmarks (e.g. curia-b's size on this machine), built
 * once into `<cache>/bench/<preset>-demo` (`<preset>-demo-int8` for `quantize: 'int8'`, the INT8
 * derivative of the same weights) and reused; demo weights, never served by default.
 */
export async function ensureBenchBundle(
  preset: PresetName,
  cacheRoot?: string,
  opts: { readonly quantize?: 'int8' } = {},
): Promise<string> {
  const name = `${preset}-demo${opts.quantize ? `-${opts.quantize}` : ''}`;
  const dir = join(cacheRoot ? resolve(cacheRoot) : defaultCacheRoot(), 'bench', name);
  try {
    // Large bundles: skip the hash, a damaged one fails to load its graph anyway.
    const loaded = await loadBundle(dir, { verifySha256: false });
    if (Boolean(loaded.manifest.quantization) === Boolean(opts.quantize)) return loaded.dir;
  } catch {
    // Missing or unreadable: rebuilt below.
  }
  await rm(dir, { recursive: true, force: true });
  return (await buildRandomBundle(dir, { preset, seed: DEFAULT_BUNDLE_SEED, ...opts })).dir;
}
