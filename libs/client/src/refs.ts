import { CuriaError } from '@curia/errors';

/** A parsed `name@version` reference; `version` is '' when the reference names no version. */
export interface Ref {
  readonly name: string;
  readonly version: string;
}

/**
 * Parses a `name` or `name@version` reference (heads, models, bundles: the contract names them all
 * this way). Surrounding blanks are ignored. INVALID_ARGUMENT names `field` when the name is empty
 * or an `@` is followed by no version.
 */
export function parseRef(ref: string, field: string): Ref {
  const at = ref.indexOf('@');
  const name = (at < 0 ? ref : ref.slice(0, at)).trim();
  const version = at < 0 ? '' : ref.slice(at + 1).trim();
  if (!name) throw new CuriaError('INVALID_ARGUMENT', `${field} '${ref}' must be "name" or "name@version"`);
  if (at >= 0 && !version) {
    throw new CuriaError('INVALID_ARGUMENT', `${field} '${ref}' has an empty version after '@'`);
  }
  return { name, version };
}

/** `name@version`, or `name` when the version is empty. */
export function formatRef(r: Ref): string {
  return r.version ? `${r.name}@${r.version}` : r.name;
}

/** True when `r` names `name@version`: same name, and the same version when `r` pins one. */
export function refMatches(r: Ref, name: string, version: string): boolean {
  return r.name === name && (r.version === '' || r.version === version);
}

/**
 * Version suffixes of derived bundles that live in their source bundle's feature space: the model
 * builder writes the INT8 derivative of `name@V` as `name@V-int8` (same name, weights quantized
 * from the same F32 graph, recorded in its manifest as `feature_space`/`quantization.source_sha256`).
 */
export const FEATURE_SPACE_VARIANT_SUFFIXES = ['-int8'] as const;

/** The version of the feature space a model version lives in: `1-int8` → `1`, `1` → `1`. */
export function featureSpaceVersion(version: string): string {
  const suffix = FEATURE_SPACE_VARIANT_SUFFIXES.find((s) => version.endsWith(s) && version.length > s.length);
  return suffix ? version.slice(0, -suffix.length) : version;
}

/** Feature-space ids (bundle manifests' `feature_space`) of the two sides, where known. */
export interface FeatureSpaces {
  readonly trainedOn?: string;
  readonly featuresFrom?: string;
}

/**
 * The head/backbone compatibility rule, one for every service: a head trained on `trainedOn`
 * (`name@version`, or '' when unknown) reads features from `featuresFrom` (`name` or
 * `name@version`) when
 * - both bundles' feature spaces are known (`spaces`, from their manifests) and equal — an F32
 *   bundle and its INT8 derivative; or
 * - the names agree and, where both sides pin a version, the versions agree up to a derived
 *   variant's suffix ({@link featureSpaceVersion}: `m@1` and `m@1-int8` share a feature space).
 *
 * A head of unknown provenance reads any backbone.
 */
export function modelsCompatible(
  trainedOn: string,
  featuresFrom: string,
  spaces: FeatureSpaces = {},
): boolean {
  if (!trainedOn || !featuresFrom) return true;
  if (spaces.trainedOn && spaces.featuresFrom && spaces.trainedOn === spaces.featuresFrom) return true;
  const a = parseRef(trainedOn, 'model');
  const b = parseRef(featuresFrom, 'model');
  return (
    a.name === b.name &&
    (a.version === '' ||
      b.version === '' ||
      featureSpaceVersion(a.version) === featureSpaceVersion(b.version))
  );
}

/**
 * Throws FAILED_PRECONDITION when head `head` (`name@version`), trained on `trainedOn`, cannot
 * read features from `featuresFrom` (see {@link modelsCompatible}).
 */
export function checkHeadModel(
  head: string,
  trainedOn: string,
  featuresFrom: string,
  spaces: FeatureSpaces = {},
): void {
  if (modelsCompatible(trainedOn, featuresFrom, spaces)) return;
  throw new CuriaError(
    'FAILED_PRECONDITION',
    `head '${head}' was trained on model '${trainedOn}', not on '${featuresFrom}'; pick a head trained on that model or request model '${trainedOn}'`,
  );
}
