import { ServerInterceptingCall, ServerListenerBuilder } from '@grpc/grpc-js';
import type { ServerInterceptor, Metadata as GrpcMetadata } from '@grpc/grpc-js';
import type { CallContext, ServerMiddleware } from 'nice-grpc-common';

import { TIMEOUT_METADATA_KEY } from '@curia/client';

/**
 * Internal metadata key with the caller's absolute deadline (epoch ms, this host's clock).
 * grpc-js hides the deadline from handlers; an interceptor copies it here.
 */
export const DEADLINE_METADATA_KEY = 'x-curia-deadline-ms';

/** grpc-js server interceptor exposing each call's deadline to nice-grpc handlers. */
export const deadlineInterceptor: ServerInterceptor = (_method, call) =>
  new ServerInterceptingCall(call, {
    start: (next) => {
      next(
        new ServerListenerBuilder()
          .withOnReceiveMetadata((metadata: GrpcMetadata, mdNext) => {
            metadata.remove(DEADLINE_METADATA_KEY); // never trust a caller-supplied value
            const deadline = call.getDeadline();
            const ms = deadline instanceof Date ? deadline.getTime() : deadline;
            if (Number.isFinite(ms)) metadata.set(DEADLINE_METADATA_KEY, String(ms));
            mdNext(metadata);
          })
          .build(),
      );
    },
  });

/** Context extension added by {@link deadlineMiddleware}. */
export interface DeadlineContext {
  /** The caller's deadline, when it set one. Pass it on to downstream calls. */
  deadline: Date | undefined;
}

/**
 * Adds `context.deadline`: from the standard `grpc-timeout` (via the interceptor) or from the
 * `curia-timeout-ms` metadata Curia's TypeScript clients send, whichever is earlier.
 */
export const deadlineMiddleware: ServerMiddleware<DeadlineContext> = async function* (call, context) {
  const received = Date.now();
  const candidates: number[] = [];
  const absolute = Number(context.metadata.get(DEADLINE_METADATA_KEY) ?? NaN);
  if (Number.isFinite(absolute)) candidates.push(absolute);
  const relative = Number(context.metadata.get(TIMEOUT_METADATA_KEY) ?? NaN);
  if (Number.isFinite(relative) && relative > 0) candidates.push(received + relative);
  const deadline = candidates.length ? new Date(Math.min(...candidates)) : undefined;
  return yield* call.next(call.request, { ...context, deadline });
};

/**
 * Options for a downstream call made while handling `context`: the same cancellation signal and
 * a deadline no later than the caller's — optionally only a `fraction` of the remaining time, so a
 * later stage still has budget — and never later than `maxMs` from now.
 */
export function downstreamCallOptions(
  context: Pick<CallContext, 'signal'> & Partial<DeadlineContext>,
  opts: { fraction?: number; maxMs?: number } = {},
): { signal: AbortSignal; deadline?: Date } {
  const now = Date.now();
  const candidates: number[] = [];
  if (context.deadline) candidates.push(now + (context.deadline.getTime() - now) * (opts.fraction ?? 1));
  if (opts.maxMs !== undefined) candidates.push(now + opts.maxMs);
  return candidates.length
    ? { signal: context.signal, deadline: new Date(Math.min(...candidates)) }
    : { signal: context.signal };
}
