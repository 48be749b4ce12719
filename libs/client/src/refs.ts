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
 * The head/backbone compatibility rule, one for every service: a head trained on `trainedOn`
 * (`name@version`, or '' when unknown) reads features from `featuresFrom` (`name` or
 * `name@version`) only when the names agree and, where both sides pin a version, the versions
 * agree. A head of unknown provenance reads any backbone.
 */
export function modelsCompatible(trainedOn: string, featuresFrom: string): boolean {
  if (!trainedOn || !featuresFrom) return true;
  const a = parseRef(trainedOn, 'model');
  const b = parseRef(featuresFrom, 'model');
  return a.name === b.name && (a.version === '' || b.version === '' || a.version === b.version);
}

/**
 * Throws FAILED_PRECONDITION when head `head` (`name@version`), trained on `trainedOn`, cannot
 * read features from `featuresFrom` (see {@link modelsCompatible}).
 */
export function checkHeadModel(head: string, trainedOn: string, featuresFrom: string): void {
  if (modelsCompatible(trainedOn, featuresFrom)) return;
  throw new CuriaError(
    'FAILED_PRECONDITION',
    `head '${head}' was trained on model '${trainedOn}', not on '${featuresFrom}'; pick a head trained on that model or request model '${trainedOn}'`,
  );
}
