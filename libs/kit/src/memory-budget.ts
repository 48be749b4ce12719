import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';

import { CuriaError } from '@curia/errors';

import type { ServiceMetrics } from './metrics.js';

/** Reads a (cgroup) file as text; throws when it is missing. */
export type CgroupReader = (path: string) => string;

const readText: CgroupReader = (path) => readFileSync(path, 'utf8');

/**
 * The memory limit of this process's cgroup in bytes, or null when none is set: cgroup v2
 * `memory.max` ("max" = none), else cgroup v1 `memory.limit_in_bytes` (a value near 2^63 = none).
 * A Kubernetes memory limit is such a limit.
 */
export function cgroupMemoryLimit(read: CgroupReader = readText): number | null {
  try {
    const v = read('/sys/fs/cgroup/memory.max').trim();
    if (v === 'max') return null;
    const n = Number(v);
    if (Number.isFinite(n) && n > 0) return n;
  } catch {
    // not cgroup v2 (or no memory controller): try v1
  }
  try {
    const n = Number(read('/sys/fs/cgroup/memory/memory.limit_in_bytes').trim());
    // v1 reports "no limit" as the largest page-aligned 64-bit value.
    if (Number.isFinite(n) && n > 0 && n < 2 ** 60) return n;
  } catch {
    // no cgroup memory controller visible
  }
  return null;
}

/** The settings {@link memoryBudgetCapacity} reads (the kit's `CURIA_MEMORY_BUDGET_*` variables). */
export interface MemoryBudgetSettings {
  /** Explicit capacity, bytes; wins over the fraction. */
  readonly CURIA_MEMORY_BUDGET_BYTES?: number | undefined;
  /** Share of the pod's memory limit (or of the machine's memory when there is none), 0 < f <= 1. */
  readonly CURIA_MEMORY_BUDGET_FRACTION: number;
}

/**
 * The byte capacity of a process's {@link MemoryBudget}: `CURIA_MEMORY_BUDGET_BYTES` when set, else
 * `CURIA_MEMORY_BUDGET_FRACTION` × the cgroup memory limit, or × `os.totalmem()` when there is none.
 */
export function memoryBudgetCapacity(
  s: MemoryBudgetSettings,
  read?: CgroupReader,
): { bytes: number; source: string } {
  if (s.CURIA_MEMORY_BUDGET_BYTES !== undefined)
    return { bytes: s.CURIA_MEMORY_BUDGET_BYTES, source: 'CURIA_MEMORY_BUDGET_BYTES' };
  const limit = cgroupMemoryLimit(read);
  const f = s.CURIA_MEMORY_BUDGET_FRACTION;
  return limit === null
    ? {
        bytes: Math.floor(totalmem() * f),
        source: `CURIA_MEMORY_BUDGET_FRACTION ${f} of the machine's memory`,
      }
    : {
        bytes: Math.floor(limit * f),
        source: `CURIA_MEMORY_BUDGET_FRACTION ${f} of the cgroup memory limit`,
      };
}

/** Options of {@link MemoryBudget}. */
export interface MemoryBudgetOptions {
  /** Bytes that may be held at once. */
  readonly capacity: number;
  /** Longest a call waits for room by default, ms (0: refuse at once when busy). */
  readonly waitMs: number;
  /** Where the capacity comes from, named in refusals (default `CURIA_MEMORY_BUDGET_BYTES`). */
  readonly setting?: string;
  /** Called with the bytes held whenever they change (a gauge). */
  readonly onChange?: (heldBytes: number) => void;
  /** Called for every refusal: `too-large` (alone above the capacity) or `busy` (no room in time). */
  readonly onRefuse?: (reason: 'too-large' | 'busy' | 'cancelled') => void;
}

/** Options of one {@link MemoryBudget.acquire}. */
export interface AcquireOptions {
  /** What the bytes are for, in the refusal (e.g. `volume 1024x1024x1000 int16`). */
  readonly what: string;
  /** Aborting stops the wait (CANCELLED). */
  readonly signal?: AbortSignal;
  /** Longest wait for room, ms (default: the budget's). */
  readonly waitMs?: number;
}

interface Waiter {
  readonly bytes: number;
  readonly grant: () => void;
}

/** Releases bytes taken with {@link MemoryBudget.acquire}; idempotent. */
export type Release = () => void;

/**
 * A byte budget for one process: calls take what their request will decode to (declared dims ×
 * dtype, samples × features) before allocating it and give it back when done. A call that does
 * not fit waits in FIFO order up to a bounded time, then is refused with RESOURCE_EXHAUSTED and a
 * `retry-after-ms` hint; a call that alone exceeds the capacity is refused at once, naming the
 * bytes, the capacity and the variable to raise. The capacity defaults from the pod's memory
 * limit ({@link memoryBudgetCapacity}), like the thread pools do from its CPU limit.
 */
export class MemoryBudget {
  private held = 0;
  private readonly queue: Waiter[] = [];

  constructor(private readonly o: MemoryBudgetOptions) {}

  /** Bytes that may be held at once. */
  get capacity(): number {
    return this.o.capacity;
  }

  /** Bytes currently held. */
  get heldBytes(): number {
    return this.held;
  }

  /** Calls waiting for room. */
  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Takes `bytes` (rounded up to a whole number, at least 0), waiting for room up to `waitMs`;
   * resolves to the release. Throws RESOURCE_EXHAUSTED (with a retry hint when waiting could help)
   * or CANCELLED.
   */
  async acquire(bytes: number, opts: AcquireOptions): Promise<Release> {
    const o = this.o;
    const need = Math.max(0, Math.ceil(bytes));
    const setting = o.setting ?? 'CURIA_MEMORY_BUDGET_BYTES';
    if (!(need <= o.capacity)) {
      o.onRefuse?.('too-large');
      throw new CuriaError(
        'RESOURCE_EXHAUSTED',
        `${opts.what} needs ${mib(need)} of memory, above this process's memory budget of ${mib(o.capacity)} (${setting}); raise CURIA_MEMORY_BUDGET_BYTES or the pod's memory limit, or send a smaller input`,
      );
    }
    if (opts.signal?.aborted) {
      o.onRefuse?.('cancelled');
      throw new CuriaError('CANCELLED', 'the call was cancelled');
    }
    if (this.queue.length === 0 && this.held + need <= o.capacity) return this.take(need);
    const waitMs = opts.waitMs ?? o.waitMs;
    const busy = (): CuriaError => {
      o.onRefuse?.('busy');
      const retryAfterMs = Math.max(100, waitMs);
      return new CuriaError(
        'RESOURCE_EXHAUSTED',
        `${opts.what} needs ${mib(need)} of memory; this process's memory budget of ${mib(o.capacity)} (${setting}) has ${mib(o.capacity - this.held)} free and ${this.queue.length} calls waiting; retry after ${retryAfterMs}ms`,
        { retryAfterMs },
      );
    };
    if (waitMs <= 0) throw busy();
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = {
        bytes: need,
        grant: () => {
          cleanup();
          resolve(this.take(need));
        },
      };
      const leave = (): void => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        cleanup();
        // The head may have been the one blocking the rest.
        this.drainQueue();
      };
      const timer = setTimeout(() => {
        leave();
        reject(busy());
      }, waitMs);
      const onAbort = (): void => {
        leave();
        o.onRefuse?.('cancelled');
        reject(new CuriaError('CANCELLED', 'the call was cancelled'));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  private take(bytes: number): Release {
    this.held += bytes;
    this.o.onChange?.(this.held);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held -= bytes;
      this.o.onChange?.(this.held);
      this.drainQueue();
    };
  }

  /** Grants waiters in FIFO order while the head fits (a large head is not overtaken). */
  private drainQueue(): void {
    for (;;) {
      const head = this.queue[0];
      if (!head || this.held + head.bytes > this.o.capacity) return;
      this.queue.shift();
      head.grant();
    }
  }
}

function mib(n: number): string {
  return `${n} bytes (${(n / 1024 ** 2).toFixed(1)} MiB)`;
}

/** Metrics a {@link MemoryBudget} reports to (the parts of {@link ServiceMetrics} it uses). */
interface BudgetMetrics {
  gauge: ServiceMetrics['gauge'];
  counter: ServiceMetrics['counter'];
}

/**
 * The memory budget of a service process from its environment, reporting
 * `curia_memory_budget_capacity_bytes`, `curia_memory_budget_held_bytes` and
 * `curia_memory_budget_refusals_total{reason}` on `metrics`.
 */
export function createMemoryBudget(
  env: MemoryBudgetSettings & { readonly CURIA_MEMORY_BUDGET_WAIT_MS: number },
  metrics: BudgetMetrics,
  read?: CgroupReader,
): MemoryBudget {
  const { bytes, source } = memoryBudgetCapacity(env, read);
  metrics
    .gauge('curia_memory_budget_capacity_bytes', `Bytes admitted calls may hold at once (${source}).`)
    .set(bytes);
  const held = metrics.gauge(
    'curia_memory_budget_held_bytes',
    'Bytes of the memory budget held by admitted calls.',
  );
  held.set(0);
  const refusals = metrics.counter(
    'curia_memory_budget_refusals_total',
    'Calls refused by the memory budget: too-large (alone above the capacity), busy (no room in time), cancelled.',
    ['reason'],
  );
  return new MemoryBudget({
    capacity: bytes,
    waitMs: env.CURIA_MEMORY_BUDGET_WAIT_MS,
    setting: source,
    onChange: (n) => held.set(n),
    onRefuse: (reason) => refusals.inc({ reason }),
  });
}
