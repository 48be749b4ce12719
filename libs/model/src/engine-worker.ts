import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { CuriaError, isCuriaError } from '@curia/errors';

import type { LoadedBundle } from './bundle/load.js';
import type { EngineInfo, EngineOptions, RunOptions, RunResult } from './engine.js';
import type { FromEngineThread, ToEngineThread } from './engine-worker-protocol.js';

/**
 * What a caller needs from a backbone engine: {@link EmbedEngine} (runs on the calling thread)
 * and {@link WorkerEmbedEngine} (runs on its own thread) both provide it.
 */
export interface EmbedRunner {
  readonly bundle: LoadedBundle;
  /** Floats per input slice (C · S · S). */
  readonly pixelsPerSlice: number;
  info(): EngineInfo;
  run(pixels: Float32Array, batch: number, opts?: RunOptions): Promise<RunResult>;
  close(): Promise<void>;
}

/**
 * The compiled thread entry. Under a TypeScript test runner this module is loaded from `src/`,
 * where no `.js` exists, so the built `dist/` copy is used (`npm run build` first).
 */
function threadScript(): URL {
  const here = import.meta.url;
  const url = here.endsWith('.ts')
    ? new URL('../dist/engine-worker-thread.js', here)
    : new URL('./engine-worker-thread.js', here);
  if (!existsSync(fileURLToPath(url))) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `the engine thread script ${fileURLToPath(url)} is missing; run npm run build`,
    );
  }
  return url;
}

interface Waiter {
  readonly resolve: (m: FromEngineThread) => void;
  readonly reject: (e: Error) => void;
}

/**
 * An {@link EmbedEngine} hosted on a worker thread. onnxruntime-node's `run` is synchronous on the
 * calling thread (the promise only defers it with setImmediate), so a service calling it on its
 * event loop can neither receive requests nor send results while a batch computes; this engine
 * keeps the caller's loop free. Same validation and errors as {@link EmbedEngine} (they are raised
 * on the thread and re-created here); `pixels` is copied to the thread (or moved, with
 * `transferInput`), results are transferred back without a copy.
 * The thread does not keep the process alive while idle; call {@link close} to release it.
 */
export class WorkerEmbedEngine implements EmbedRunner {
  private readonly waiters = new Map<number, Waiter>();
  private nextId = 0;
  private dead: Error | null = null;
  private closing = false;
  private readonly failureListeners: ((e: Error) => void)[] = [];

  private constructor(
    private readonly worker: Worker,
    readonly bundle: LoadedBundle,
    private readonly infoValue: EngineInfo,
  ) {
    worker.on('message', (m: FromEngineThread) => this.onMessage(m));
    worker.on('error', (e) => this.fail(e));
    worker.on('exit', (code) => this.fail(new Error(`engine thread exited with code ${code}`)));
    worker.unref();
  }

  /** Starts the thread and opens `bundleDir` there with `opts` (see {@link EngineOptions}). */
  static async open(bundleDir: string, opts: EngineOptions = {}): Promise<WorkerEmbedEngine> {
    const { signal, ...options } = opts;
    if (signal?.aborted) throw new CuriaError('CANCELLED', 'engine open cancelled');
    const worker = new Worker(threadScript());
    let onAbort = (): void => undefined;
    let onError = (_e: Error): void => undefined;
    let onExit = (_code: number): void => undefined;
    let onMessage = (_m: FromEngineThread): void => undefined;
    try {
      const opened = await new Promise<Extract<FromEngineThread, { kind: 'opened' }>>((resolve, reject) => {
        onAbort = () => reject(new CuriaError('CANCELLED', 'engine open cancelled'));
        onError = reject;
        onExit = (code) => reject(new CuriaError('INTERNAL', `engine thread exited (${code})`));
        onMessage = (m) => {
          if (m.kind === 'opened') resolve(m);
          else if (m.kind === 'error') reject(new CuriaError(m.error.code, m.error.message));
          else reject(new CuriaError('INTERNAL', `engine thread answered open with ${m.kind}`));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        worker.on('error', onError);
        worker.on('exit', onExit);
        worker.on('message', onMessage);
        const msg: ToEngineThread = { kind: 'open', bundleDir, options };
        worker.postMessage(msg);
      });
      return new WorkerEmbedEngine(worker, opened.bundle, opened.info);
    } catch (e) {
      await worker.terminate();
      throw e;
    } finally {
      // Only this handshake's listeners: Worker's own bookkeeping listens on the same emitter.
      signal?.removeEventListener('abort', onAbort);
      worker.off('error', onError);
      worker.off('exit', onExit);
      worker.off('message', onMessage);
    }
  }

  /** Name, version, hash, provider, threads and shape facts of the engine on the thread. */
  info(): EngineInfo {
    return this.infoValue;
  }

  /** Floats per input slice (C · S · S). */
  get pixelsPerSlice(): number {
    return this.infoValue.numChannels * this.infoValue.imageSize ** 2;
  }

  /** As {@link EmbedEngine.run}, computed on the engine thread. */
  async run(pixels: Float32Array, batch: number, opts: RunOptions = {}): Promise<RunResult> {
    if (opts.signal?.aborted) throw new CuriaError('CANCELLED', 'embedding cancelled');
    const outputs = opts.outputs ?? ['last_hidden_state'];
    // Cloning a view clones its whole buffer: send a compact copy of a partial view.
    const whole = pixels.byteOffset === 0 && pixels.byteLength === pixels.buffer.byteLength;
    const sent = whole ? pixels : pixels.slice();
    const transfer = opts.transferInput === true && whole ? [pixels.buffer as ArrayBuffer] : [];
    const inputChecked = opts.inputChecked === true;
    const m = await this.call(
      (id) => ({ kind: 'run', id, pixels: sent, batch, outputs, inputChecked }),
      transfer,
    );
    if (m.kind !== 'result') throw new CuriaError('INTERNAL', `engine thread answered run with ${m.kind}`);
    if (opts.signal?.aborted) throw new CuriaError('CANCELLED', 'embedding cancelled');
    const info = this.infoValue;
    return {
      ...(m.lastHiddenState ? { lastHiddenState: m.lastHiddenState } : {}),
      ...(m.lastBlockPrenorm ? { lastBlockPrenorm: m.lastBlockPrenorm } : {}),
      batch,
      tokens: info.tokens,
      hidden: info.hidden,
      numRegisterTokens: info.numRegisterTokens,
    };
  }

  /**
   * Calls `listener` once if the thread dies on its own (a native crash, an uncaught error,
   * out of memory) — not after {@link close}. Every pending and later `run` then fails with
   * UNAVAILABLE: the engine is unusable and its owner should stop serving.
   */
  onFailure(listener: (e: Error) => void): void {
    if (this.dead && !this.closing) listener(this.dead);
    else this.failureListeners.push(listener);
  }

  /** Releases the session and ends the thread. Further `run` calls fail with FAILED_PRECONDITION. */
  async close(): Promise<void> {
    if (this.dead) return;
    this.closing = true;
    try {
      await this.call((id) => ({ kind: 'close', id }));
    } catch {
      // the thread is gone already: nothing left to release
    }
    this.fail(new CuriaError('FAILED_PRECONDITION', 'engine is closed'));
    await this.worker.terminate();
  }

  private call(
    make: (id: number) => ToEngineThread,
    transfer: ArrayBuffer[] = [],
  ): Promise<FromEngineThread> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<FromEngineThread>((resolve, reject) => {
      this.waiters.set(id, { resolve, reject });
      if (this.waiters.size === 1) this.worker.ref();
      this.worker.postMessage(make(id), transfer);
    });
  }

  private onMessage(m: FromEngineThread): void {
    if (m.kind === 'opened') return;
    const w = this.waiters.get(m.id);
    if (!w) return;
    this.waiters.delete(m.id);
    if (this.waiters.size === 0) this.worker.unref();
    if (m.kind === 'error') w.reject(new CuriaError(m.error.code, m.error.message));
    else w.resolve(m);
  }

  private fail(e: Error): void {
    if (this.dead) return;
    this.dead = isCuriaError(e)
      ? e
      : new CuriaError(
          'UNAVAILABLE',
          `the inference engine thread died (${e.message}); retry on another replica`,
        );
    for (const w of this.waiters.values()) w.reject(this.dead);
    this.waiters.clear();
    if (this.closing) return;
    for (const l of this.failureListeners.splice(0)) l(this.dead);
  }
}
