import { CuriaError } from '@curia/errors';

/** Options of {@link ConcurrencyGate}. */
export interface ConcurrencyGateOptions {
  /** Calls admitted at once. */
  readonly max: number;
  /** Retry hint sent with RESOURCE_EXHAUSTED, ms. */
  readonly retryAfterMs: number;
  /** The setting that sets `max`, named in the refusal (e.g. `CURIA_REGISTER_MAX_CONCURRENT`). */
  readonly setting: string;
  /** What is full, for the refusal (e.g. `this register replica`). */
  readonly what: string;
  /** Called with the number of admitted calls whenever it changes (an in-flight gauge). */
  readonly onChange?: (inFlight: number) => void;
  /** Called for every shed call (a shed counter). */
  readonly onShed?: () => void;
}

/**
 * Admission of expensive calls on one replica: up to `max` run at once, and the next is shed at
 * once with RESOURCE_EXHAUSTED and a retry hint (the caller goes to another replica or backs off)
 * instead of queueing behind work it cannot see.
 */
export class ConcurrencyGate {
  private running = 0;

  constructor(private readonly o: ConcurrencyGateOptions) {}

  /** Calls admitted and not yet released. */
  get inFlight(): number {
    return this.running;
  }

  /** Admits a call, returning its release (idempotent), or throws RESOURCE_EXHAUSTED. */
  admit(): () => void {
    const o = this.o;
    if (this.running >= o.max) {
      o.onShed?.();
      throw new CuriaError(
        'RESOURCE_EXHAUSTED',
        `${o.what} is running ${this.running} calls (${o.setting}); retry after ${o.retryAfterMs}ms`,
        { retryAfterMs: o.retryAfterMs },
      );
    }
    o.onChange?.(++this.running);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      o.onChange?.(--this.running);
    };
  }
}
