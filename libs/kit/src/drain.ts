import { isAbortError } from 'abort-controller-x';
import { ServerError, Status, type CallContext, type ServerMiddleware } from 'nice-grpc-common';

import type { Logger } from './logger.js';
import type { ServiceMetrics } from './metrics.js';
import { toServerError } from './errors.js';

interface TrackedCall {
  readonly method: string;
  readonly abort: AbortController;
}

/**
 * Tracks in-flight calls so a server can drain: stop taking work, let running calls finish, and
 * after the grace period end whatever is still running with UNAVAILABLE (so clients retry on
 * another replica) rather than letting it hang.
 */
export class DrainController {
  private readonly calls = new Set<TrackedCall>();
  private idleWaiters: (() => void)[] = [];
  private draining = false;

  /** Number of calls in flight. */
  get inFlight(): number {
    return this.calls.size;
  }

  /** True once {@link beginDrain} was called. */
  get isDraining(): boolean {
    return this.draining;
  }

  /** Stops admitting new calls (they get UNAVAILABLE). */
  beginDrain(): void {
    this.draining = true;
  }

  /** Resolves when no call is in flight, or false after `timeoutMs`. */
  waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.calls.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(done);
    });
  }

  /** Aborts every call in flight; their handlers see an aborted signal, callers get UNAVAILABLE. */
  abortAll(): number {
    for (const c of this.calls) c.abort.abort(new ShutdownAbort());
    return this.calls.size;
  }

  /** Aborts the calls whose method path passes `pred` (e.g. endless health Watch streams). */
  abortWhere(pred: (methodPath: string) => boolean): number {
    let n = 0;
    for (const c of this.calls) {
      if (pred(c.method)) {
        c.abort.abort(new ShutdownAbort());
        n++;
      }
    }
    return n;
  }

  /** @internal */
  track(method: string, parent: AbortSignal): TrackedCall {
    const call: TrackedCall = { method, abort: new AbortController() };
    if (parent.aborted) call.abort.abort(parent.reason);
    else parent.addEventListener('abort', () => call.abort.abort(parent.reason), { once: true });
    this.calls.add(call);
    return call;
  }

  /** @internal */
  untrack(call: TrackedCall): void {
    this.calls.delete(call);
    if (this.calls.size === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}

/** Abort reason used when a call is ended by shutdown. */
export class ShutdownAbort extends Error {
  override name = 'ShutdownAbort';
  constructor() {
    super('server is shutting down');
  }
}

const UNAVAILABLE_MESSAGE = 'server is shutting down; retry on another replica';

function abortedPromise(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = (): void => reject(signal.reason instanceof Error ? signal.reason : new ShutdownAbort());
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}

/**
 * The innermost kit middleware: admission during drain, in-flight tracking (with a per-call
 * signal the drain can abort), error mapping to precise statuses, and per-call logging.
 * Handlers must observe `context.signal`; streaming responses are additionally raced against it
 * so a shutdown ends them even if a handler is stuck (unary calls run through the same loop:
 * their inner generator yields nothing and returns the response).
 */
export function callMiddleware(
  drain: DrainController,
  metrics: ServiceMetrics,
  log: Logger,
): ServerMiddleware {
  return async function* curiaCallMiddleware(call, context) {
    const [, service = '', method = ''] = call.method.path.split('/');
    if (drain.isDraining && !call.method.path.startsWith('/grpc.health.v1.')) {
      throw new ServerError(Status.UNAVAILABLE, UNAVAILABLE_MESSAGE);
    }
    const tracked = drain.track(call.method.path, context.signal);
    const gauge = metrics.inFlight.labels(service, method);
    gauge.inc();
    const started = performance.now();
    const ctx: CallContext = { ...context, signal: tracked.abort.signal };
    const shutdownAborted = (): boolean => tracked.abort.signal.reason instanceof ShutdownAbort;
    let code = 'OK';
    try {
      const inner = call.next(call.request, ctx);
      const aborted = abortedPromise(tracked.abort.signal);
      aborted.catch(() => undefined);
      try {
        for (;;) {
          const step = await Promise.race([inner.next(), aborted]);
          if (step.done) return step.value;
          yield step.value;
        }
      } finally {
        // Let the handler run its cleanup (finally blocks) when we stop early.
        void inner.return(undefined as never).catch(() => undefined);
      }
    } catch (err) {
      if (shutdownAborted()) {
        code = 'UNAVAILABLE';
        throw new ServerError(Status.UNAVAILABLE, UNAVAILABLE_MESSAGE);
      }
      if (context.signal.aborted && isAbortError(err)) {
        code = 'CANCELLED';
        throw err; // the caller cancelled or its deadline passed: nobody is listening
      }
      const se = toServerError(err, context, (e) =>
        log.error({ err: e, method: call.method.path }, 'unhandled error in handler'),
      );
      code = Status[se.code];
      throw se;
    } finally {
      drain.untrack(tracked);
      gauge.dec();
      const ms = performance.now() - started;
      const level = code === 'INTERNAL' ? 'error' : code === 'OK' || code === 'CANCELLED' ? 'debug' : 'info';
      log[level]({ method: call.method.path, code, ms: Math.round(ms * 10) / 10 }, 'rpc finished');
    }
  };
}
