import { Metadata, type CallOptions, type ClientMiddleware } from 'nice-grpc-common';
import type { DeadlineOptions } from 'nice-grpc-client-middleware-deadline';

/** Metadata key carrying the time left for a call, in milliseconds (relative: no clock skew). */
export const TIMEOUT_METADATA_KEY = 'curia-timeout-ms';

/** Internal call option: the call's absolute deadline, carried past the deadline middleware. */
export interface AbsoluteDeadlineOptions {
  curiaAbsoluteDeadline?: number;
}

/**
 * Outermost client middleware: records the call's absolute deadline before nice-grpc's deadline
 * middleware consumes the `deadline` option.
 */
export const captureDeadlineMiddleware: ClientMiddleware<DeadlineOptions & AbsoluteDeadlineOptions> =
  async function* (call, options) {
    const { deadline } = options;
    if (deadline == null) return yield* call.next(call.request, options);
    const at = deadline instanceof Date ? deadline.getTime() : Date.now() + deadline;
    const next: CallOptions & AbsoluteDeadlineOptions = { ...options, curiaAbsoluteDeadline: at };
    return yield* call.next(call.request, next);
  };

/**
 * Innermost client middleware: sends the time left to the server, on every attempt.
 *
 * nice-grpc enforces deadlines on the client only and grpc-js refuses user metadata named
 * `grpc-*`, so the standard `grpc-timeout` header is never sent: without this the server never
 * learns the caller's budget and cannot pass it on to downstream stages. Curia servers read
 * `grpc-timeout` (other languages' clients) and this key alike.
 */
export const timeoutHeaderMiddleware: ClientMiddleware<AbsoluteDeadlineOptions> = async function* (
  call,
  options,
) {
  const { curiaAbsoluteDeadline, ...rest } = options;
  if (curiaAbsoluteDeadline === undefined) return yield* call.next(call.request, rest);
  const metadata = Metadata(options.metadata);
  metadata.set(TIMEOUT_METADATA_KEY, String(Math.max(1, Math.ceil(curiaAbsoluteDeadline - Date.now()))));
  return yield* call.next(call.request, { ...rest, metadata });
};
