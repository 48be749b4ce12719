import { setMaxListeners } from 'node:events';

import { CuriaError } from '@curia/errors';
import {
  errorReason,
  noteAuditTarget,
  studyRef,
  type CuriaCallContext,
  type Logger,
  type MemoryBudget,
  type Release,
} from '@curia/kit';
import type { embed } from '@curia/proto';

import { decodeSlice, planStream, sliceMemoryBytes, type DecodedSlice, type ModelShape } from './codec.js';
import type { EmbedMetrics } from './metrics.js';
import type { ModelEntry, ModelRegistry } from './models.js';
import { computeFeatures } from './postprocess.js';
import type { EmbedScheduler, SliceRun } from './scheduler.js';

/** Per-stream limits of the Embed rpc. */
export interface StreamLimits {
  /** Slices of one stream queued or computing at once. */
  readonly maxInflightPerStream: number;
  /** Slices accepted per stream. */
  readonly maxSlicesPerStream: number;
}

/** What the Embed handler needs. */
export interface EmbedDeps {
  readonly registry: ModelRegistry;
  readonly scheduler: EmbedScheduler;
  readonly metrics: EmbedMetrics;
  readonly limits: StreamLimits;
  readonly log: Logger;
  /**
   * The process's memory budget: every slice takes what it will decode to and produce
   * ({@link sliceMemoryBytes}) before it is decoded, and gives it back once its result is sent;
   * the first slice's share is taken at start. None: no budget.
   */
  readonly memory?: MemoryBudget;
}

interface InFlight {
  readonly slice: DecodedSlice;
  readonly run: Promise<SliceRun>;
  /** Gives back the slice's share of the memory budget. */
  readonly release: Release;
}

function newAbortError(): Error {
  const e = new Error('the caller cancelled the stream or its deadline passed');
  e.name = 'AbortError';
  return e;
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : newAbortError();
}

/** Resolves with `p`, or rejects as soon as `signal` fires. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A one-shot wake-up between the request reader and the response writer. */
class Signal {
  private waiter: (() => void) | null = null;

  wait(signal: AbortSignal): Promise<void> {
    return untilAborted(new Promise<void>((r) => (this.waiter = r)), signal);
  }

  notify(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
}

async function readStart(
  it: AsyncIterator<embed.EmbedRequest>,
  signal: AbortSignal,
): Promise<embed.EmbedStart> {
  const first = await untilAborted(it.next(), signal);
  if (first.done)
    throw new CuriaError('INVALID_ARGUMENT', 'the request stream ended before its start message');
  const msg = first.value.msg;
  if (msg?.$case !== 'start') {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `the first message must be start (got ${msg?.$case ?? 'an empty message'})`,
    );
  }
  return msg.value;
}

/** The call context nice-grpc gives the Embed handler (headers, signal, the caller's deadline). */
export type EmbedCallContext = Parameters<embed.EmbedServiceImplementation<CuriaCallContext>['embed']>[1];

/**
 * The Embed bidi stream: validates `start`, then pipelines the slices — each is decoded and
 * submitted to the shared batcher as it arrives (up to `maxInflightPerStream` at once, so
 * batching can merge them with other streams' slices) — and emits results in the order the
 * slices were sent, then a summary. Any failure ends the stream and drops its queued slices.
 */
export async function* handleEmbed(
  request: AsyncIterable<embed.EmbedRequest>,
  context: EmbedCallContext,
  deps: EmbedDeps,
): AsyncGenerator<embed.EmbedResponse> {
  const { metrics, scheduler, limits } = deps;
  const stream = new AbortController();
  // Every queued slice listens on the stream's signal (up to maxInflightPerStream at once).
  setMaxListeners(limits.maxInflightPerStream + 8, stream.signal);
  const cancel = (): void => stream.abort(newAbortError());
  if (context.signal.aborted) cancel();
  else context.signal.addEventListener('abort', cancel, { once: true });
  const it = request[Symbol.asyncIterator]();
  const pending: InFlight[] = [];
  const resultReady = new Signal();
  const slotFree = new Signal();
  let readerDone = false;
  // Set by the reader when the request stream is invalid; a holder so TS does not narrow it.
  const failed: { error?: Error } = {};
  const readerFailure = (): Error | undefined => failed.error;
  let reader: Promise<void> = Promise.resolve();
  // Budget shares held by this stream outside `pending`: the next slice's (the first one's is
  // taken at start) and the one of the result being sent.
  const held: { next?: Release | undefined; sending?: Release | undefined } = {};
  try {
    const start = await readStart(it, stream.signal);
    const entry: ModelEntry = deps.registry.resolve(start.model);
    const info = entry.engine.info();
    const shape: ModelShape = { imageSize: info.imageSize, grid: entry.grid, hidden: info.hidden };
    // Decodes projection bases once for the stream.
    const plan = planStream(start, shape);
    const sliceBytes = sliceMemoryBytes(plan, shape, info.tokens);
    const what = `an Embed slice (${plan.outputs.length} outputs, ${info.tokens}×${info.hidden} tokens)`;
    const reserve = async (): Promise<Release> =>
      deps.memory ? deps.memory.acquire(sliceBytes, { what, signal: stream.signal }) : () => undefined;
    // The first slice's share at start: a stream whose slice alone exceeds the budget, or that
    // finds no room in time, is refused before its headers, so the client sends no slice.
    held.next = await reserve();
    scheduler.admitStream();
    // Admitted (start valid, queue not full): headers now (nice-grpc sends none while they are
    // empty), so a client waiting for them (see the proto) starts sending slices.
    context.header.set('curia-model', entry.key);
    noteAuditTarget(context, entry.key);
    context.sendHeader();
    const layout = { tokens: info.tokens, hidden: info.hidden, numRegisterTokens: info.numRegisterTokens };

    reader = (async () => {
      try {
        let count = 0;
        for (;;) {
          while (pending.length >= limits.maxInflightPerStream) await slotFree.wait(stream.signal);
          const next = await untilAborted(it.next(), stream.signal);
          if (next.done) break;
          const msg = next.value.msg;
          if (msg?.$case !== 'slice') {
            throw new CuriaError(
              'INVALID_ARGUMENT',
              `message ${count + 2} must be slice (got ${msg?.$case ?? 'an empty message'}); start is sent once`,
            );
          }
          if (++count > limits.maxSlicesPerStream) {
            throw new CuriaError(
              'RESOURCE_EXHAUSTED',
              `a stream may carry at most ${limits.maxSlicesPerStream} slices (CURIA_EMBED_MAX_SLICES_PER_STREAM); open another stream`,
            );
          }
          // After the message arrived (bounded by the receive limit), before it is decoded.
          const share = (held.next ??= await reserve());
          const slice = decodeSlice(msg.value, plan, shape);
          metrics.inflight.inc();
          const run = scheduler
            .submit(entry, slice.pixels, plan.ortOutputs, stream.signal)
            .finally(() => metrics.inflight.dec());
          run.catch(() => undefined); // observed by the writer, in order
          pending.push({ slice, run, release: share });
          held.next = undefined;
          resultReady.notify();
        }
      } catch (e) {
        failed.error = e instanceof Error ? e : new CuriaError('INTERNAL', 'request stream failed');
        stream.abort(failed.error);
      } finally {
        readerDone = true;
        resultReady.notify();
      }
    })();

    const batchSizes: number[] = [];
    const seenBatches = new Set<number>();
    let queueMs = 0;
    let inferenceMs = 0;
    let postMs = 0;
    let done = 0;
    for (;;) {
      const early = readerFailure();
      if (early) throw early;
      const head = pending[0];
      if (!head) {
        if (readerDone) break;
        try {
          await resultReady.wait(stream.signal);
        } catch (e) {
          throw failed.error ?? e;
        }
        continue;
      }
      let run: SliceRun;
      try {
        run = await head.run;
      } catch (e) {
        throw failed.error ?? e;
      }
      pending.shift();
      const sent = head.release;
      held.sending = sent;
      slotFree.notify();
      queueMs += run.queueMs;
      if (!seenBatches.has(run.batchId)) {
        seenBatches.add(run.batchId);
        batchSizes.push(run.batchSize);
        inferenceMs += run.computeMs;
      }
      const t0 = performance.now();
      const features = computeFeatures(plan.outputs, run.tokens, layout, entry.grid, head.slice.mask);
      postMs += performance.now() - t0;
      done++;
      yield { msg: { $case: 'result', value: { sliceId: head.slice.sliceId, features } } };
      sent();
      held.sending = undefined;
    }
    const late = readerFailure();
    if (late) throw late;
    deps.log.debug({ study: studyRef(start.studyId), model: entry.key, slices: done }, 'embed stream done');
    yield {
      msg: {
        $case: 'done',
        value: {
          slices: done,
          batchSizes,
          timings: [
            { stage: 'queue', millis: queueMs },
            { stage: 'inference', millis: inferenceMs },
            { stage: 'postprocess', millis: postMs },
          ],
          model: entry.info,
        },
      },
    };
  } catch (e) {
    metrics.errors.inc({ reason: errorReason(e) });
    throw e;
  } finally {
    context.signal.removeEventListener('abort', cancel);
    // Drops this stream's queued slices and stops the reader.
    stream.abort(new CuriaError('CANCELLED', 'embed stream ended'));
    await reader;
    held.next?.();
    held.sending?.();
    for (const p of pending) p.release();
  }
}
