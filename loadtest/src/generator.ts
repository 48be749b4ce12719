import { setTimeout as sleep } from 'node:timers/promises';

import { LatencyHistogram, type LatencySummary } from './histogram.js';
import { Timeline, type TimelineBin } from './timeline.js';

/** How load is offered: a constant arrival rate (open loop) or a fixed number of callers (closed loop). */
export type LoadMode =
  | { readonly kind: 'open'; readonly ratePerSec: number }
  | { readonly kind: 'closed'; readonly concurrency: number };

/** gRPC status names (`OK`, `UNAVAILABLE`, …) plus `CLIENT_TIMEOUT` for a call the generator gave up on. */
export type StatusName = string;

/** What one call reports. */
export interface CallOutcome {
  /** Final gRPC status name. */
  readonly code: StatusName;
  /** The server address that handled it (`127.0.0.1:port`), when known. */
  readonly peer?: string;
  /** Work units completed (slices of an Embed stream, studies of AnalyzeStudy); default 1 when OK. */
  readonly units?: number;
  /** The `retry-after-ms` trailer of a shed call. */
  readonly retryAfterMs?: number;
  /** The status message (kept once per status, for the report). */
  readonly details?: string;
}

/** What a call function receives. */
export interface CallContext {
  /** Absolute deadline (epoch ms) the call must pass to gRPC. */
  readonly deadline: number;
  /** Fires when the generator abandons the call (deadline + grace, or the run is aborted). */
  readonly signal: AbortSignal;
  /** Sequence number of the call in this run. */
  readonly seq: number;
}

/** One call of the workload; must resolve (never reject) with the call's status. */
export type CallFn = (ctx: CallContext) => Promise<CallOutcome>;

/** Retry policy of the generator (for fault runs: a client that retries UNAVAILABLE elsewhere). */
export interface RetryPolicy {
  /** Attempts in total, including the first. */
  readonly maxAttempts: number;
  /** Status names that are retried. */
  readonly codes: readonly StatusName[];
  /** Pause before a retry, ms (default 20). */
  readonly backoffMs?: number;
}

/** Bounds and knobs of one run. Every run stops at `durationMs` or `maxRequests`, whichever comes first. */
export interface LoadOptions {
  readonly mode: LoadMode;
  /** Longest the generator offers load, ms. */
  readonly durationMs: number;
  /** Most calls started. */
  readonly maxRequests: number;
  /** Per-call deadline, ms. */
  readonly deadlineMs: number;
  /** Open loop: calls allowed in flight; arrivals beyond it are counted as `skipped` (default 2000). */
  readonly maxInFlight?: number;
  /** Calls finishing in the first `warmupMs` are left out of the latency figures (default 0). */
  readonly warmupMs?: number;
  /** Timeline bin width, ms (default 1000). */
  readonly binMs?: number;
  readonly retry?: RetryPolicy;
  /** Keep one record per call (for fault analysis; bounded by maxRequests). */
  readonly keepRecords?: boolean;
  /** Stops offering load early. */
  readonly signal?: AbortSignal;
  /** Extra time a call may take past its deadline before it counts as hung, ms (default 2000). */
  readonly hangGraceMs?: number;
}

/** One finished call. */
export interface CallRecord {
  /** Intended start, ms since the run started. */
  readonly startMs: number;
  readonly latencyMs: number;
  readonly code: StatusName;
  /** The status message of a failed call. */
  readonly details?: string;
  readonly peer: string;
  readonly attempts: number;
  /** Peers of the attempts that failed and were retried. */
  readonly retriedPeers: readonly string[];
}

/** Everything a run measured. */
export interface LoadResult {
  readonly mode: LoadMode;
  readonly durationMs: number;
  readonly deadlineMs: number;
  /** Wall time from the first call to the last completion, ms. */
  readonly elapsedMs: number;
  /** Time load was offered, ms. */
  readonly offeredMs: number;
  readonly started: number;
  readonly completed: number;
  /** Open loop: arrivals dropped because `maxInFlight` calls were outstanding. */
  readonly skipped: number;
  /** Calls still unfinished `hangGraceMs` after their deadline (should be 0). */
  readonly hung: number;
  /** Calls that finished later than deadline + 1 s (should be 0). */
  readonly overdue: number;
  /** Final status counts. */
  readonly byCode: Readonly<Record<StatusName, number>>;
  /** Retries made (attempts beyond the first). */
  readonly retries: number;
  /** RESOURCE_EXHAUSTED calls that carried a `retry-after-ms` trailer. */
  readonly shedWithRetryAfter: number;
  /** The first status message seen per non-OK status. */
  readonly errorSamples: Readonly<Record<StatusName, string>>;
  /** OK calls per second over `elapsedMs`. */
  readonly okPerSec: number;
  /** Units (slices, studies) completed OK per second over `elapsedMs`. */
  readonly unitsPerSec: number;
  /**
   * Units completed OK per second while load was offered (after warm-up): the rate the service
   * delivered under this load, free of the drain tail that `unitsPerSec` includes when calls queue.
   */
  readonly steadyUnitsPerSec: number;
  /** Latency of the OK calls (after warm-up). */
  readonly latency: LatencySummary;
  /** Latency per final status. */
  readonly latencyByCode: Readonly<Record<StatusName, LatencySummary>>;
  /** OK calls per peer (client-side view of the balance). */
  readonly okByPeer: Readonly<Record<string, number>>;
  readonly timeline: readonly TimelineBin[];
  readonly records?: readonly CallRecord[];
}

/** The generator's own outcome for a call that did not settle in time. */
export const CLIENT_TIMEOUT = 'CLIENT_TIMEOUT';

class RunState {
  readonly t0 = performance.now();
  readonly ok = new LatencyHistogram();
  readonly byCodeLatency = new Map<StatusName, LatencyHistogram>();
  readonly byCode = new Map<StatusName, number>();
  readonly okByPeer = new Map<string, number>();
  readonly errorSamples = new Map<StatusName, string>();
  readonly records: CallRecord[] = [];
  readonly timeline: Timeline;
  started = 0;
  completed = 0;
  skipped = 0;
  hung = 0;
  overdue = 0;
  retries = 0;
  shedWithRetryAfter = 0;
  units = 0;
  steadyUnits = 0;
  steadyEnd = Number.POSITIVE_INFINITY;
  inFlight = 0;
  lastDone = 0;

  constructor(private readonly options: LoadOptions) {
    this.timeline = new Timeline(options.binMs ?? 1_000);
  }

  now(): number {
    return performance.now() - this.t0;
  }

  finish(startMs: number, outcome: CallOutcome, attempts: number, retriedPeers: string[]): void {
    const end = this.now();
    const latency = end - startMs;
    this.completed++;
    this.lastDone = Math.max(this.lastDone, end);
    this.byCode.set(outcome.code, (this.byCode.get(outcome.code) ?? 0) + 1);
    if (outcome.code === CLIENT_TIMEOUT) this.hung++;
    if (outcome.code !== 'OK' && !this.errorSamples.has(outcome.code)) {
      this.errorSamples.set(outcome.code, outcome.details ?? '');
    }
    if (outcome.code === 'RESOURCE_EXHAUSTED' && Number.isFinite(outcome.retryAfterMs))
      this.shedWithRetryAfter++;
    if (latency > this.options.deadlineMs + 1_000) this.overdue++;
    const ok = outcome.code === 'OK';
    const units = ok ? (outcome.units ?? 1) : 0;
    this.timeline.record(end, ok, latency, units);
    if (end >= (this.options.warmupMs ?? 0)) {
      let h = this.byCodeLatency.get(outcome.code);
      if (!h) this.byCodeLatency.set(outcome.code, (h = new LatencyHistogram()));
      h.record(latency);
      if (ok) {
        this.ok.record(latency);
      }
    }
    if (ok) {
      this.units += units;
      if (end >= (this.options.warmupMs ?? 0) && end <= this.steadyEnd) this.steadyUnits += units;
      const peer = outcome.peer ?? 'unknown';
      this.okByPeer.set(peer, (this.okByPeer.get(peer) ?? 0) + 1);
    }
    if (this.options.keepRecords) {
      this.records.push({
        startMs,
        latencyMs: latency,
        code: outcome.code,
        ...(outcome.code !== 'OK' && outcome.details !== undefined ? { details: outcome.details } : {}),
        peer: outcome.peer ?? 'unknown',
        attempts,
        retriedPeers,
      });
    }
  }
}

/** The call's outcome, or CLIENT_TIMEOUT once `signal` fires first (one listener, no race array). */
function settleOrAbandon(pending: Promise<CallOutcome>, signal: AbortSignal): Promise<CallOutcome> {
  if (signal.aborted) return Promise.resolve({ code: CLIENT_TIMEOUT });
  return new Promise((resolve) => {
    const abandoned = (): void => resolve({ code: CLIENT_TIMEOUT });
    signal.addEventListener('abort', abandoned, { once: true });
    void pending.then((outcome) => {
      signal.removeEventListener('abort', abandoned);
      resolve(outcome);
    });
  });
}

/**
 * Runs one call to completion within its deadline (plus grace), retrying per `retry`. The call
 * function is abandoned (its signal fires) if it has not settled by deadline + hang grace.
 */
async function oneCall(
  call: CallFn,
  seq: number,
  state: RunState,
  options: LoadOptions,
  startMs: number,
): Promise<void> {
  state.inFlight++;
  const deadline = Date.now() + options.deadlineMs - (state.now() - startMs);
  const abandon = new AbortController();
  const grace = options.hangGraceMs ?? 2_000;
  const timer = setTimeout(() => abandon.abort(), Math.max(0, deadline - Date.now()) + grace);
  const retriedPeers: string[] = [];
  let attempts = 0;
  let outcome: CallOutcome = { code: CLIENT_TIMEOUT };
  try {
    for (;;) {
      attempts++;
      outcome = await settleOrAbandon(call({ deadline, signal: abandon.signal, seq }), abandon.signal);
      const retry = options.retry;
      if (
        !retry ||
        attempts >= retry.maxAttempts ||
        !retry.codes.includes(outcome.code) ||
        abandon.signal.aborted ||
        Date.now() >= deadline
      ) {
        break;
      }
      retriedPeers.push(outcome.peer ?? 'unknown');
      state.retries++;
      await sleep(Math.min(retry.backoffMs ?? 20, Math.max(0, deadline - Date.now())));
    }
  } finally {
    // Not abort(): a settled call has nothing left to cancel, and abort() builds a DOMException
    // (with a stack trace) per call, a measurable share of the generator's CPU at 3k calls/s.
    clearTimeout(timer);
    state.inFlight--;
  }
  state.finish(startMs, outcome, attempts, retriedPeers);
}

function resultOf(state: RunState, options: LoadOptions, offeredMs: number): LoadResult {
  const elapsedMs = Math.max(1, state.lastDone);
  const latencyByCode: Record<StatusName, LatencySummary> = {};
  for (const [code, h] of state.byCodeLatency) latencyByCode[code] = h.summary();
  return {
    mode: options.mode,
    durationMs: options.durationMs,
    deadlineMs: options.deadlineMs,
    elapsedMs,
    offeredMs,
    started: state.started,
    completed: state.completed,
    skipped: state.skipped,
    hung: state.hung,
    overdue: state.overdue,
    byCode: Object.fromEntries(state.byCode),
    retries: state.retries,
    shedWithRetryAfter: state.shedWithRetryAfter,
    errorSamples: Object.fromEntries(state.errorSamples),
    okPerSec: ((state.byCode.get('OK') ?? 0) * 1000) / elapsedMs,
    unitsPerSec: (state.units * 1000) / elapsedMs,
    steadyUnitsPerSec: (state.steadyUnits * 1000) / Math.max(1, offeredMs - (options.warmupMs ?? 0)),
    latency: state.ok.summary(),
    latencyByCode,
    okByPeer: Object.fromEntries(state.okByPeer),
    timeline: state.timeline.series(),
    ...(options.keepRecords ? { records: state.records } : {}),
  };
}

/**
 * Offers load with `call` and measures it. Open loop: calls start on a fixed schedule
 * (`i / rate`) whatever the latency, and latency is measured from the scheduled start, so a slow
 * server cannot hide its queueing (no coordinated omission). Closed loop: `concurrency` callers
 * each start a call when their previous one ends. Both stop at `durationMs` or `maxRequests`,
 * then wait for the calls in flight (each bounded by its deadline plus `hangGraceMs`).
 */
export async function runLoad(call: CallFn, options: LoadOptions): Promise<LoadResult> {
  if (!(options.durationMs > 0) || !(options.maxRequests > 0) || !(options.deadlineMs > 0)) {
    throw new Error('durationMs, maxRequests and deadlineMs must be positive: every run is bounded');
  }
  const state = new RunState(options);
  const running = new Set<Promise<void>>();
  const stopped = (): boolean => options.signal?.aborted === true || state.now() >= options.durationMs;
  const launch = (startMs: number): void => {
    const seq = state.started++;
    const p = oneCall(call, seq, state, options, startMs).finally(() => running.delete(p));
    running.add(p);
  };
  if (options.mode.kind === 'open') {
    const rate = options.mode.ratePerSec;
    if (!(rate > 0)) throw new Error('open-loop rate must be positive');
    const interval = 1000 / rate;
    const cap = options.maxInFlight ?? 2_000;
    for (let i = 0; i < options.maxRequests; i++) {
      const due = i * interval;
      if (due >= options.durationMs) break;
      const wait = due - state.now();
      if (wait > 1) await sleep(wait);
      if (options.signal?.aborted) break;
      if (state.inFlight >= cap) {
        state.skipped++;
        continue;
      }
      launch(due);
    }
  } else {
    const { concurrency } = options.mode;
    if (!(concurrency >= 1)) throw new Error('closed-loop concurrency must be at least 1');
    const worker = async (): Promise<void> => {
      while (!stopped() && state.started < options.maxRequests) {
        const seq = state.started++;
        await oneCall(call, seq, state, options, state.now());
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }
  const offeredMs = state.now();
  state.steadyEnd = offeredMs;
  await Promise.all(running);
  return resultOf(state, options, offeredMs);
}
