import {
  createClientFactory,
  Metadata,
  type ClientMiddleware,
  type Channel,
  type Client,
  type ClientError,
  type CompatServiceDefinition,
  Status,
} from 'nice-grpc';
import { deadlineMiddleware, type DeadlineOptions } from 'nice-grpc-client-middleware-deadline';
import { retryMiddleware, type RetryOptions } from 'nice-grpc-client-middleware-retry';
import { openTelemetryClientMiddleware } from 'nice-grpc-opentelemetry';

import { captureDeadlineMiddleware, timeoutHeaderMiddleware } from './deadline-header.js';

/** Call options every Curia client accepts (retry and deadline middleware options). */
export type CuriaCallOptions = RetryOptions & DeadlineOptions;

/** Options of {@link createCuriaClient}. */
export interface CuriaClientOptions {
  /** Deadline applied to calls that set none, ms (default 30 s). Streams usually set their own. */
  readonly defaultDeadlineMs?: number;
  /** Attempts for idempotent unary methods on UNAVAILABLE (default 3, i.e. 2 retries). */
  readonly retryMaxAttempts?: number;
  /** Base delay of the exponential backoff between attempts, ms (default 100). */
  readonly retryBaseDelayMs?: number;
  /** Called before each retry (for logs/metrics). */
  readonly onRetry?: (error: ClientError, attempt: number, delayMs: number) => void;
  /** Sent as `authorization: Bearer <token>` on every call (servers with `CURIA_AUTH=on`). */
  readonly bearerToken?: string;
}

/** Client middleware adding `authorization: Bearer <token>` to every call. */
function bearerTokenMiddleware(token: string): ClientMiddleware {
  return async function* bearer(call, options) {
    const metadata = Metadata(options.metadata).set('authorization', `Bearer ${token}`);
    return yield* call.next(call.request, { ...options, metadata });
  };
}

const passThrough: ClientMiddleware = (call, options) => call.next(call.request, options);

/**
 * Creates a typed client: OpenTelemetry context propagation (W3C traceparent in metadata),
 * retries with backoff on UNAVAILABLE for methods marked idempotent in the proto
 * (`idempotency_level`) and never for others, and a default deadline that is also sent to the
 * server (`grpc-timeout`) so it can budget downstream stages. Unary calls only are
 * retried; streaming calls are retried by their callers, who know what was already consumed.
 */
export function createCuriaClient<S extends CompatServiceDefinition>(
  definition: S,
  channel: Channel,
  options: CuriaClientOptions = {},
): Client<S, CuriaCallOptions> {
  // Client middleware added later wraps the earlier ones: capture → deadline → retry → header → otel.
  const factory = createClientFactory()
    .use(options.bearerToken ? bearerTokenMiddleware(options.bearerToken) : passThrough)
    .use(openTelemetryClientMiddleware())
    .use(timeoutHeaderMiddleware)
    .use(retryMiddleware)
    .use(deadlineMiddleware)
    .use(captureDeadlineMiddleware);
  return factory.create(definition, channel, {
    '*': {
      deadline: options.defaultDeadlineMs ?? 30_000,
      retryableStatuses: [Status.UNAVAILABLE],
      retryMaxAttempts: options.retryMaxAttempts ?? 3,
      retryBaseDelayMs: options.retryBaseDelayMs ?? 100,
      retryMaxDelayMs: 2_000,
      ...(options.onRetry ? { onRetryableError: options.onRetry } : {}),
    },
  });
}
