import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { CuriaError } from '@curia/errors';

import type { ProcessedSlice } from './slice-kernel.js';
import type { SliceAnswer, SliceTask } from './slice-pool-protocol.js';
import type { PreprocessSpec } from './spec.js';

/**
 * The compiled thread entry. Under a TypeScript test runner this module is loaded from `src/`,
 * where no `.js` exists, so the built `dist/` copy is used (`npm run build` first).
 */
function threadScript(): URL {
  const here = import.meta.url;
  const url = here.endsWith('.ts')
    ? new URL('../../dist/preprocess/slice-worker-thread.js', here)
    : new URL('./slice-worker-thread.js', here);
  if (!existsSync(fileURLToPath(url))) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `the slice thread script ${fileURLToPath(url)} is missing; run npm run build`,
    );
  }
  return url;
}

/** A processed slice plus the raw buffer it was computed from, handed back for reuse. */
export type PooledSlice = ProcessedSlice & { readonly raw: Float64Array };

interface Task {
  readonly resolve: (s: PooledSlice) => void;
  readonly reject: (e: Error) => void;
}

interface Lane {
  readonly worker: Worker;
  readonly tasks: Map<number, Task>;
  dead: boolean;
}

/** Default pool size: every core but one (the event loop keeps one for I/O and encoding). */
export function defaultSliceThreads(): number {
  return Math.max(1, availableParallelism() - 1);
}

/**
 * Worker threads that run the per-slice resize + normalisation ({@link processSlice}) off the
 * caller's event loop. Buffers move by transfer (no copies): the raw slice goes to a thread and
 * comes back with the fresh float32 pixels. Tasks go to the least busy thread. Idle threads do not
 * keep the process alive; {@link close} ends them.
 */
export class SlicePool {
  private readonly lanes: Lane[] = [];
  private nextId = 0;
  private closed = false;

  constructor(threads: number = defaultSliceThreads()) {
    if (!Number.isSafeInteger(threads) || threads < 1) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `slice pool threads must be a positive integer (got ${threads})`,
      );
    }
    const script = threadScript();
    for (let i = 0; i < threads; i++) {
      const lane: Lane = { worker: new Worker(script), tasks: new Map(), dead: false };
      lane.worker.on('message', (a: SliceAnswer) => this.onAnswer(lane, a));
      lane.worker.on('error', (e) => this.failLane(lane, e.message));
      lane.worker.on('exit', (code) => this.failLane(lane, `exited with code ${code}`));
      lane.worker.unref();
      this.lanes.push(lane);
    }
  }

  /** Number of threads. */
  get size(): number {
    return this.lanes.length;
  }

  /**
   * Processes one `rows x cols` raw slice with `spec` on a pool thread. `raw` is transferred (the
   * caller's array is detached until it comes back as `raw` in the result).
   */
  process(raw: Float64Array, rows: number, cols: number, spec: PreprocessSpec): Promise<PooledSlice> {
    if (this.closed) return Promise.reject(new CuriaError('UNAVAILABLE', 'slice pool is closed'));
    let lane: Lane | undefined;
    for (const l of this.lanes) if (!l.dead && (!lane || l.tasks.size < lane.tasks.size)) lane = l;
    if (!lane) return Promise.reject(new CuriaError('INTERNAL', 'every slice pool thread has failed'));
    const chosen = lane;
    const id = this.nextId++;
    // A view into a larger buffer would move (and detach) the whole buffer: send a compact copy.
    const whole = raw.byteOffset === 0 && raw.byteLength === raw.buffer.byteLength;
    const sent = whole ? raw : raw.slice();
    return new Promise<PooledSlice>((resolve, reject) => {
      chosen.tasks.set(id, { resolve, reject });
      if (chosen.tasks.size === 1) chosen.worker.ref();
      const task: SliceTask = { id, raw: sent, rows, cols, spec };
      chosen.worker.postMessage(task, [sent.buffer as ArrayBuffer]);
    });
  }

  /** Ends every thread; pending tasks fail with UNAVAILABLE. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.lanes) this.failLane(l, 'pool closed', 'UNAVAILABLE');
    await Promise.all(this.lanes.map((l) => l.worker.terminate()));
  }

  private onAnswer(lane: Lane, a: SliceAnswer): void {
    const t = lane.tasks.get(a.id);
    if (!t) return;
    lane.tasks.delete(a.id);
    if (lane.tasks.size === 0) lane.worker.unref();
    if (a.ok) t.resolve({ pixels: a.pixels, rawStats: a.rawStats, stats: a.stats, raw: a.raw });
    else t.reject(new CuriaError('INTERNAL', `slice processing failed: ${a.message}`));
  }

  private failLane(lane: Lane, why: string, code: 'INTERNAL' | 'UNAVAILABLE' = 'INTERNAL'): void {
    if (lane.dead) return;
    lane.dead = true;
    const e = new CuriaError(code, `slice pool thread ${why}`);
    for (const t of lane.tasks.values()) t.reject(e);
    lane.tasks.clear();
  }
}
