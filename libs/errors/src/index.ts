/**
 * Error categories an engine can raise. They are named after the gRPC status each maps to, so a
 * service turns an engine failure into a precise status without guessing.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'RESOURCE_EXHAUSTED'
  | 'FAILED_PRECONDITION'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED'
  | 'OUT_OF_RANGE'
  | 'UNIMPLEMENTED'
  | 'UNAVAILABLE'
  | 'DEADLINE_EXCEEDED'
  | 'CANCELLED'
  | 'INTERNAL';

/**
 * An error with a category a caller can act on. Messages name the problem (which field, which
 * limit) and never contain patient identifiers or pixel values.
 */
export class CuriaError extends Error {
  override name = 'CuriaError';

  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfterMs?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.retryAfterMs = options?.retryAfterMs;
  }

  /** For RESOURCE_EXHAUSTED / UNAVAILABLE: how long a caller should wait before retrying. */
  readonly retryAfterMs: number | undefined;
}

/** True when `e` is a CuriaError (also across duplicated module instances). */
export function isCuriaError(e: unknown): e is CuriaError {
  return e instanceof CuriaError || (e instanceof Error && e.name === 'CuriaError' && 'code' in e);
}
