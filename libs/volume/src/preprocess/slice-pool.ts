import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { CuriaError } from '@curia/errors';
import { cpuBudget } from '@curia/tensors';

import { ownedCopy } from '../io/voxel-array.js';
import type { SliceStats } from './normalize.js';
import type { RawSliceStats } from './slice-kernel.js';
import {
  inputArray,
  SLICE_DTYPE_BYTES,
  type SliceAnswer,
  type SliceInput,
  type SliceOutput,
  type SliceTask,
} from './slice-pool-protocol.js';
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

/** A processed slice: its statistics, the filled output and the input, handed back for reuse. */
export interface PooledSlice {
  readonly input: SliceInput;
  /** The output given to {@link SlicePool.process}, its buffer now holding the values. */
  readonly out: SliceOutput;
  readonly rawStats: RawSliceStats;
  readonly stats: SliceStats;
}

interface Task {
  readonly resolve: (s: PooledSlice) => void;
  readonly reject: (e: Error) => void;
}

interface Lane {
  readonly worker: Worker;
  readonly tasks: Map<number, Task>;
  dead: boolean;
}

/**
 * Default pool size: one thread per CPU of the process's budget (cores, capped by a cgroup CPU
 * limit; at most 32). The caller's event loop only reads input planes and sends, and the threads
 * share the CPUs with it (measured on 2 cores, `npm run bench:preprocess`: 2 threads served ~15%
 * more slices/s than 1).
 */
export function defaultSliceThreads(): number {
  // Each thread is a V8 isolate (~10 MB); past a few dozen, slices/s is bound by the event loop.
  return Math.min(cpuBudget(), 32);
}

/**
 * Worker threads that run the per-slice work (decode a compressed frame, gather and scale the
 * input plane, resize, normalise, convert to F16) off the caller's event loop. Buffers move by
 * transfer (no copies): the input and the output buffer go to a thread and come back, the output
 * filled in. Tasks go to the least busy thread. Idle threads do not keep the process alive;
 * {@link close} ends them.
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
   * Processes one `rows x cols` canonical slice with `spec` on a pool thread, writing the
   * targetSize[0] x targetSize[1] values into `out`. The input's array and `out.buffer` are
   * transferred (the caller's arrays are detached until they come back in the result).
   */
  process(
    input: SliceInput,
    rows: number,
    cols: number,
    spec: PreprocessSpec,
    out: SliceOutput,
  ): Promise<PooledSlice> {
    if (this.closed) return Promise.reject(new CuriaError('UNAVAILABLE', 'slice pool is closed'));
    const size = SLICE_DTYPE_BYTES[out.dtype];
    const end = out.byteOffset + spec.targetSize[0] * spec.targetSize[1] * size;
    if (out.byteOffset % size !== 0 || end > out.buffer.byteLength) {
      return Promise.reject(
        new CuriaError(
          'INVALID_ARGUMENT',
          `slice output at byte ${out.byteOffset} of a ${out.buffer.byteLength}-byte buffer cannot hold aligned ${out.dtype} values up to byte ${end}`,
        ),
      );
    }
    let lane: Lane | undefined;
    for (const l of this.lanes) if (!l.dead && (!lane || l.tasks.size < lane.tasks.size)) lane = l;
    if (!lane) return Promise.reject(new CuriaError('INTERNAL', 'every slice pool thread has failed'));
    const chosen = lane;
    const id = this.nextId++;
    // A view into a larger buffer would move (and detach) the whole buffer: send an owned copy.
    const arr = inputArray(input);
    const sent: SliceInput =
      arr.byteOffset === 0 && arr.byteLength === arr.buffer.byteLength
        ? input
        : input.kind === 'raw'
          ? { ...input, raw: ownedCopy(input.raw) }
          : input.kind === 'plane'
            ? { ...input, voxels: ownedCopy(input.voxels) }
            : { ...input, encoded: { ...input.encoded, frame: ownedCopy(input.encoded.frame) } };
    return new Promise<PooledSlice>((resolve, reject) => {
      chosen.tasks.set(id, { resolve, reject });
      if (chosen.tasks.size === 1) chosen.worker.ref();
      const task: SliceTask = { id, input: sent, rows, cols, spec, out };
      chosen.worker.postMessage(task, [inputArray(sent).buffer as ArrayBuffer, out.buffer]);
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
    if (a.ok) t.resolve({ input: a.input, out: a.out, rawStats: a.rawStats, stats: a.stats });
    else if (a.code) t.reject(new CuriaError(a.code, a.message));
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
