import { ClientError, Status, type Metadata } from '@curia/client';
import { CuriaError, isCuriaError } from '@curia/errors';
import { errorCodeOf, isAbortError, RETRY_AFTER_TRAILER } from '@curia/kit';

/** A stage service, as named in error messages and metric labels (e.g. `preprocess`, `embed`). */
export type Stage = string;

/** Collects a call's trailers so a RESOURCE_EXHAUSTED retry hint can be passed on to our caller. */
export class TrailerCapture {
  retryAfterMs: number | undefined;

  /** Pass as the call's `onTrailer` option. */
  readonly onTrailer = (trailer: Metadata): void => {
    const v = Number(trailer.get(RETRY_AFTER_TRAILER));
    if (Number.isFinite(v) && v >= 0) this.retryAfterMs = v;
  };
}

/** True for a failure worth retrying on another replica (the replica died or is draining). */
export function isUnavailable(err: unknown): boolean {
  return err instanceof ClientError && err.code === Status.UNAVAILABLE;
}

/**
 * Maps a failed stage call to the error our caller receives: the stage's status is kept (its
 * message names the field or limit, prefixed with the stage), RESOURCE_EXHAUSTED keeps the
 * stage's retry hint, aborts become CANCELLED or DEADLINE_EXCEEDED, a refusal of this service's own
 * credentials and anything else INTERNAL.
 */
export function stageError(
  stage: Stage,
  err: unknown,
  opts: { retryAfterMs?: number; signal?: AbortSignal } = {},
): CuriaError {
  if (isCuriaError(err)) return err;
  if (err instanceof ClientError) {
    // The stage refused *this service's* credentials, not our caller's: a deployment problem.
    if (err.code === Status.UNAUTHENTICATED || err.code === Status.PERMISSION_DENIED) {
      return new CuriaError(
        'INTERNAL',
        `${stage} stage refused this service's credentials (${Status[err.code]}): ${err.details}; check its certificate and CURIA_AUTH_CERT_ROLES`,
        { cause: err },
      );
    }
    const code = errorCodeOf(err.code) ?? 'INTERNAL';
    const retryAfterMs =
      code === 'RESOURCE_EXHAUSTED' || code === 'UNAVAILABLE' ? opts.retryAfterMs : undefined;
    const msg =
      code === 'INTERNAL'
        ? `${stage} stage failed (${Status[err.code]}): ${err.details}`
        : code === 'DEADLINE_EXCEEDED'
          ? `${stage}: the stage's share of the study deadline ran out (${err.details}); allow the study more time`
          : `${stage}: ${err.details}`;
    return new CuriaError(code, msg, { cause: err, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
  }
  if (isAbortError(err) || opts.signal?.aborted) {
    return new CuriaError('CANCELLED', `${stage}: the study was cancelled`, { cause: err });
  }
  return new CuriaError('INTERNAL', `${stage} stage failed unexpectedly`, { cause: err });
}
