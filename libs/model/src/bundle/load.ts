import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { CuriaError } from '@curia/errors';

import { bundleManifestSchema, MANIFEST_FILE, MODEL_FILE, type BundleManifest } from './manifest.js';
import { sha256File } from './sha256.js';

/** A bundle found on disk with a validated manifest. */
export interface LoadedBundle {
  /** Absolute bundle directory. */
  readonly dir: string;
  /** Absolute path of `model.onnx`. */
  readonly modelPath: string;
  readonly manifest: BundleManifest;
}

/** Options of {@link loadBundle}. */
export interface LoadBundleOptions {
  /** Recompute model.onnx's sha256 and compare with the manifest (default true; ~1 s/GB). */
  readonly verifySha256?: boolean;
  readonly signal?: AbortSignal;
}

/**
 * Reads and validates `bundle.json` (zod) and checks `model.onnx` (size always, sha256 unless
 * disabled). NOT_FOUND when the directory has no manifest; FAILED_PRECONDITION when the manifest
 * is corrupt or the model does not match it.
 */
export async function loadBundle(dir: string, opts: LoadBundleOptions = {}): Promise<LoadedBundle> {
  const abs = resolve(dir);
  let text: string;
  try {
    text = await readFile(join(abs, MANIFEST_FILE), 'utf8');
  } catch (e) {
    throw new CuriaError('NOT_FOUND', `model bundle has no ${MANIFEST_FILE} at ${abs}`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CuriaError('FAILED_PRECONDITION', `${MANIFEST_FILE} in ${abs} is not valid JSON`, { cause: e });
  }
  const parsed = bundleManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid';
    throw new CuriaError('FAILED_PRECONDITION', `${MANIFEST_FILE} in ${abs} is invalid at ${where}`);
  }
  const manifest = parsed.data;
  const modelPath = join(abs, MODEL_FILE);
  let size: number;
  try {
    size = (await stat(modelPath)).size;
  } catch (e) {
    throw new CuriaError('FAILED_PRECONDITION', `model bundle ${abs} lacks ${MODEL_FILE}`, { cause: e });
  }
  if (size !== manifest.model_bytes) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `${MODEL_FILE} in ${abs} is ${size} bytes but ${MANIFEST_FILE} records ${manifest.model_bytes}`,
    );
  }
  if (opts.verifySha256 ?? true) {
    const sha = await sha256File(modelPath, opts.signal);
    if (sha !== manifest.sha256) {
      throw new CuriaError(
        'FAILED_PRECONDITION',
        `${MODEL_FILE} in ${abs} has sha256 ${sha.slice(0, 12)}…, ${MANIFEST_FILE} records ${manifest.sha256.slice(0, 12)}…`,
      );
    }
  }
  return { dir: abs, modelPath, manifest };
}
