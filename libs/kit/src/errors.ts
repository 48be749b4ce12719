import { isCuriaError, type ErrorCode } from '@curia/errors';
import { isAbortError } from 'abort-controller-x';
import { ServerError, Status, type CallContext } from 'nice-grpc-common';

/** Trailer carrying how long a shed caller should wait before retrying, in milliseconds. */
export const RETRY_AFTER_TRAILER = 'retry-after-ms';

/** The one status ↔ error-code table: CuriaError codes are named after the status they map to. */
const STATUS_OF: Readonly<Record<ErrorCode, Status>> = {
  INVALID_ARGUMENT: Status.INVALID_ARGUMENT,
  NOT_FOUND: Status.NOT_FOUND,
  ALREADY_EXISTS: Status.ALREADY_EXISTS,
  RESOURCE_EXHAUSTED: Status.RESOURCE_EXHAUSTED,
  FAILED_PRECONDITION: Status.FAILED_PRECONDITION,
  PERMISSION_DENIED: Status.PERMISSION_DENIED,
  UNAUTHENTICATED: Status.UNAUTHENTICATED,
  OUT_OF_RANGE: Status.OUT_OF_RANGE,
  UNIMPLEMENTED: Status.UNIMPLEMENTED,
  UNAVAILABLE: Status.UNAVAILABLE,
  DEADLINE_EXCEEDED: Status.DEADLINE_EXCEEDED,
  CANCELLED: Status.CANCELLED,
  INTERNAL: Status.INTERNAL,
};

const CODE_OF: ReadonlyMap<Status, ErrorCode> = new Map(
  Object.entries(STATUS_OF).map(([code, status]) => [status, code as ErrorCode]),
);

/** The gRPC status a CuriaError code maps to. */
export function statusOf(code: ErrorCode): Status {
  return STATUS_OF[code];
}

/**
 * The CuriaError code of a gRPC status (the inverse of {@link statusOf}), e.g. to pass a
 * backend's failure on to our caller; `undefined` for statuses no CuriaError carries (OK,
 * UNKNOWN, ABORTED, DATA_LOSS).
 */
export function errorCodeOf(status: Status): ErrorCode | undefined {
  return CODE_OF.get(status);
}

/**
 * Turns any error thrown by a handler into a ServerError with a precise status. Unknown errors
 * become INTERNAL (never UNKNOWN) with a generic message; the original goes to `onInternal`
 * (the log) only. Retry hints travel in the `retry-after-ms` trailer.
 */
export function toServerError(
  err: unknown,
  context: Pick<CallContext, 'trailer'> | undefined,
  onInternal: (err: unknown) => void,
): ServerError {
  if (err instanceof ServerError) return err;
  if (isCuriaError(err)) {
    if (err.retryAfterMs !== undefined && context)
      context.trailer.set(RETRY_AFTER_TRAILER, String(err.retryAfterMs));
    return new ServerError(statusOf(err.code), err.message);
  }
  if (
    err instanceof RangeError &&
    /Array buffer allocation failed|Invalid typed array length/.test(err.message)
  ) {
    return new ServerError(
      Status.RESOURCE_EXHAUSTED,
      'request needs more memory than this replica can allocate',
    );
  }
  onInternal(err);
  return new ServerError(
    Status.INTERNAL,
    'internal error while handling the request; the server log has details',
  );
}

/**
 * The status-code name a failed call ends with, for `reason`/`code` metric labels: a CuriaError's
 * code, a ServerError's status, CANCELLED for an abort, else INTERNAL.
 */
export function errorReason(err: unknown): string {
  if (isCuriaError(err)) return err.code;
  if (err instanceof ServerError) return Status[err.code];
  if (isAbortError(err)) return 'CANCELLED';
  return 'INTERNAL';
}

export { isAbortError, ServerError, Status };

/** A response stream that fails with `err` on first read (for rpcs a deployment does not serve). */
export function failedStream(err: Error): AsyncIterable<never> {
  return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(err) }) };
}
