import { formatRef, parseRef, type Ref } from '@curia/client';
import { env, z } from '@curia/kit';

import { HEAD_NAME_RE, type HeadStore, type StoredHead } from './store.js';

/** A head the deployment runs by default: by name (its promoted version) or pinned to a version. */
export type DefaultHeadRef = Ref;

/**
 * `CURIA_HEADS_DEFAULT`: a comma list of `name` or `name@version`. Only the syntax is checked at
 * boot: a default may name a head that a Fit creates later (as `curia up` does with its demo head).
 */
export const defaultHeadsSchema = env.commaList.default([]).transform((entries, ctx): DefaultHeadRef[] => {
  const refs: DefaultHeadRef[] = [];
  const bad: string[] = [];
  for (const entry of entries) {
    try {
      const ref = parseRef(entry, 'CURIA_HEADS_DEFAULT');
      if (HEAD_NAME_RE.test(ref.name)) refs.push(ref);
      else bad.push(entry);
    } catch {
      bad.push(entry);
    }
  }
  if (bad.length > 0) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a comma list of head names ([a-z0-9-]) or name@version (bad: ${bad.join(', ')})`,
    });
    return z.NEVER;
  }
  return refs;
});

/** True when `s` is a default head: named with its version, or by name alone as its promoted version. */
export function isDefaultHead(store: HeadStore, defaults: readonly DefaultHeadRef[], s: StoredHead): boolean {
  const { name, version } = s.head.meta;
  return defaults.some((d) => d.name === name && (d.version ? d.version === version : store.get(name) === s));
}

/** The defaults that name no stored head (yet). */
export function missingDefaults(store: HeadStore, defaults: readonly DefaultHeadRef[]): string[] {
  return defaults
    .filter((d) => {
      try {
        store.get(d.name, d.version);
        return false;
      } catch {
        return true;
      }
    })
    .map(formatRef);
}
