import { CuriaError } from '@curia/errors';

/** Throws CANCELLED when `signal` has fired, so long loops stop promptly. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new CuriaError('CANCELLED', `${what} was cancelled`);
}

/** Lets pending timers and abort events run during a long computation, then checks `signal`. */
export async function yieldAndCheck(signal: AbortSignal | undefined, what: string): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  throwIfAborted(signal, what);
}

/** Shorthand for an INVALID_ARGUMENT CuriaError. */
export function invalid(message: string): CuriaError {
  return new CuriaError('INVALID_ARGUMENT', message);
}
