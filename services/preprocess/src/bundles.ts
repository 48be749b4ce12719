import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { parseRef, refMatches } from '@curia/client';
import { CuriaError } from '@curia/errors';
import { loadBundle, type BundleManifest } from '@curia/model';
import { bundlePreprocessSpec, CURIA_DEFAULT_PREPROCESS_SPEC, type PreprocessSpec } from '@curia/volume';

/** The preprocessing spec a request resolves to, and where it came from. */
export interface ResolvedSpec {
  /** "name@version" of the bundle, or "" for the server default (CURIA_DEFAULT_PREPROCESS_SPEC). */
  readonly bundle: string;
  readonly spec: PreprocessSpec;
}

/** The engine spec a bundle manifest describes. */
export function specFromManifest(m: BundleManifest): PreprocessSpec {
  return bundlePreprocessSpec(m.preprocess);
}

/** Manifests of every valid bundle directly under `root` (invalid or foreign directories are skipped). */
export async function listBundles(root: string | undefined, signal?: AbortSignal): Promise<BundleManifest[]> {
  if (!root) return [];
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: BundleManifest[] = [];
  for (const e of entries) {
    if (!e.isDirectory() || e.name.startsWith('.')) continue;
    try {
      out.push((await loadBundle(join(root, e.name), { verifySha256: false, signal })).manifest);
    } catch {
      // Not a bundle (or a broken one): it cannot be the requested bundle anyway.
    }
  }
  return out;
}

const byVersionDesc = (a: BundleManifest, b: BundleManifest): number =>
  b.version.localeCompare(a.version, 'en', { numeric: true });

/**
 * Resolves `options.model_bundle`: empty = the default Curia spec; "name@version" or "name" (latest
 * version) = the preprocess spec of that bundle under `bundlesDir`; unknown → NOT_FOUND.
 */
export async function resolveBundleSpec(
  name: string,
  bundlesDir: string | undefined,
  signal?: AbortSignal,
): Promise<ResolvedSpec> {
  if (name === '') return { bundle: '', spec: CURIA_DEFAULT_PREPROCESS_SPEC };
  const ref = parseRef(name, 'options.model_bundle');
  if (!bundlesDir) {
    throw new CuriaError(
      'NOT_FOUND',
      `options.model_bundle '${name}' is unknown: this server has no bundles (CURIA_BUNDLES_DIR is not set); leave it empty for the default spec`,
    );
  }
  const match = (await listBundles(bundlesDir, signal))
    .filter((m) => refMatches(ref, m.name, m.version))
    .sort(byVersionDesc)[0];
  if (!match) {
    throw new CuriaError(
      'NOT_FOUND',
      `options.model_bundle '${name}' is not among the bundles of this server (see GetInfo.models)`,
    );
  }
  return { bundle: `${match.name}@${match.version}`, spec: specFromManifest(match) };
}
