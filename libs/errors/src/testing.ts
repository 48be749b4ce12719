/**
 * `@curia/errors/testing`: how tests state which error a call raised.
 *
 * @packageDocumentation
 */
import { isCuriaError } from './index.js';

/** `CODE: message` for a CuriaError (also from a duplicated module copy), else `String(e)`. */
export function errorText(e: unknown): string {
  return isCuriaError(e) ? `${e.code}: ${e.message}` : String(e);
}

/** {@link errorText} of what `fn` throws, or `undefined` when it returns. */
export function thrownText(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return errorText(e);
  }
  return undefined;
}

/** {@link errorText} of what `p` rejects with, or `undefined` when it resolves. */
export function rejectionText(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(() => undefined, errorText);
}
