import { CuriaError } from '@curia/errors';

/** Progress of an optimiser: the stage running and how far it got (`done` of `total` steps). */
export type OptimProgress = (stage: string, done: number, total: number) => void;

/** Cancellation and progress hooks shared by the optimisers. */
export interface OptimControl {
  /** Aborting it stops the optimiser at its next check with a CANCELLED CuriaError. */
  readonly signal?: AbortSignal;
  /** Called at every step of every stage. */
  readonly onProgress?: OptimProgress;
}

/** Throws CANCELLED when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new CuriaError('CANCELLED', `${what} cancelled`);
}

/**
 * Yields to the event loop (so an abort from a timer, a socket or a gRPC cancel can land), then
 * throws CANCELLED when the signal has fired.
 */
export async function checkpoint(signal: AbortSignal | undefined, what: string): Promise<void> {
  throwIfAborted(signal, what);
  await new Promise<void>((resolve) => setImmediate(resolve));
  throwIfAborted(signal, what);
}

/** INVALID_ARGUMENT unless `v` is an integer in [lo, hi]. */
export function checkInt(v: number, lo: number, hi: number, what: string): number {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw new CuriaError('INVALID_ARGUMENT', `${what} must be an integer in ${lo}..${hi}, got ${v}`);
  }
  return v;
}

/** INVALID_ARGUMENT unless `v` is a finite number in [lo, hi]. */
export function checkNumber(v: number, lo: number, hi: number, what: string): number {
  if (!Number.isFinite(v) || v < lo || v > hi) {
    throw new CuriaError('INVALID_ARGUMENT', `${what} must be a number in [${lo}, ${hi}], got ${v}`);
  }
  return v;
}
