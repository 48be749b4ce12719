import type { CuriaCallContext } from '@curia/kit';

/** The caller identity recorded when no authenticated identity is known. */
export const ANONYMOUS_CALLER = 'anonymous';

/**
 * Who is calling, as recorded with what the call changes (Fit's new version, PromoteHead's alias).
 * There is no authentication on the call context yet, so every caller is {@link ANONYMOUS_CALLER};
 * the auth middleware (issue #17, item 1) will put an identity on the context, and this is the one
 * place that reads it. Handlers take the result as a parameter of their internal functions.
 */
export function callerOf(_context: CuriaCallContext): string {
  return ANONYMOUS_CALLER;
}
