import type { Client, CuriaCallOptions } from '@curia/client';
import { CuriaError } from '@curia/errors';
import { AsyncQueue } from '@curia/kit';
import type { common, embed } from '@curia/proto';
import { delay } from 'abort-controller-x';

import { isUnavailable, stageError, TrailerCapture } from './stage-errors.js';

/** An EmbedService client (the bulk definition, or the generated one). */
export type EmbedClient = Client<typeof embed.EmbedServiceDefinition, CuriaCallOptions>;

/** One slice to embed: `id` is echoed back (the canonical index). */
export interface SliceToEmbed {
  readonly id: number;
  readonly pixels: common.Tensor;
  readonly mask?: common.Tensor | undefined;
}

/** Options of {@link embedSlices}. */
export interface EmbedStreamOptions {
  readonly start: embed.EmbedStart;
  /** Slices sent and not yet answered (bounds memory; they are kept for a resend). */
  readonly window: number;
  /**
   * Longest wait, ms, for the replica to admit a stream (its response headers) before sending
   * slices anyway (default 1000): Embed replicas send headers on admission, so this bounds only a
   * replica that does not (an older build), which then gets the slices as before.
   */
  readonly admissionWaitMs?: number;
  /** Attempts on UNAVAILABLE, including the first. */
  readonly attempts: number;
  readonly signal: AbortSignal;
  readonly deadline?: Date | undefined;
  /** Called before each retry. */
  readonly onRetry?: (attempt: number, err: unknown) => void;
  /** Called with the summary of each completed stream. */
  readonly onSummary?: (done: embed.EmbedSummary) => void;
}

/**
 * Embeds slices through one EmbedService stream, pulling from `source` while at most `window`
 * slices are unanswered, and yields each slice's features in the order the slices came.
 *
 * When the replica serving the stream dies or drains (UNAVAILABLE), a new stream is opened —
 * round-robin puts it on another replica — and the unanswered slices are sent again, so the
 * caller sees no gap and no duplicate. No call is opened when `source` is empty.
 */
export async function* embedSlices(
  client: EmbedClient,
  source: AsyncIterable<SliceToEmbed>,
  opts: EmbedStreamOptions,
): AsyncGenerator<{ slice: SliceToEmbed; features: common.Feature[] }> {
  const pending: SliceToEmbed[] = [];
  let queue = new AsyncQueue<embed.EmbedRequest>();
  let sourceDone = false;
  const failed: { error: Error | null } = { error: null };
  // A function, not a property read: TypeScript would keep the narrowing from an earlier check.
  const throwIfSourceFailed = (): void => {
    if (failed.error) throw failed.error;
  };
  let windowOpen: (() => void) | null = null;
  let stopped = false;
  let firstSlice!: () => void;
  const started = new Promise<void>((resolve) => (firstSlice = resolve));
  const toRequest = (s: SliceToEmbed): embed.EmbedRequest => ({
    msg: { $case: 'slice', value: { sliceId: s.id, pixels: s.pixels, mask: s.mask } },
  });

  const pump = (async () => {
    try {
      for await (const s of source) {
        while (pending.length >= opts.window && !stopped) await new Promise<void>((r) => (windowOpen = r));
        if (stopped) return;
        pending.push(s);
        queue.push(toRequest(s));
        firstSlice();
      }
      sourceDone = true;
      queue.close();
    } catch (err) {
      failed.error = err instanceof Error ? err : new Error(String(err));
      queue.fail(failed.error);
    } finally {
      firstSlice();
    }
  })();

  try {
    await started;
    throwIfSourceFailed();
    if (pending.length === 0 && sourceDone) return;
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1) {
        queue = new AsyncQueue<embed.EmbedRequest>();
        for (const s of pending) queue.push(toRequest(s));
        if (sourceDone) queue.close();
      }
      const requests = queue;
      const trailers = new TrailerCapture();
      const call = new AbortController();
      const onAbort = (): void => call.abort();
      opts.signal.addEventListener('abort', onAbort);
      // Slices go out only once the replica has admitted the stream (its response headers), so a
      // replica that refuses it under overload costs one small `start` message, not 1 MiB slices.
      let admit!: () => void;
      const admitted = new Promise<void>((resolve) => (admit = resolve));
      call.signal.addEventListener('abort', () => admit(), { once: true });
      const admissionTimer = setTimeout(() => admit(), opts.admissionWaitMs ?? 1_000);
      void admitted.then(() => clearTimeout(admissionTimer));
      try {
        const stream = client.embed(
          (async function* () {
            yield { msg: { $case: 'start', value: opts.start } } satisfies embed.EmbedRequest;
            await admitted;
            yield* requests;
          })(),
          {
            signal: call.signal,
            deadline: opts.deadline,
            onHeader: () => admit(),
            onTrailer: trailers.onTrailer,
          },
        );
        for await (const res of stream) {
          if (res.msg?.$case === 'result') {
            const slice = pending.shift();
            if (!slice || slice.id !== res.msg.value.sliceId) {
              throw new CuriaError('INTERNAL', 'embed stage answered out of order');
            }
            const open = windowOpen as (() => void) | null;
            windowOpen = null;
            open?.();
            yield { slice, features: res.msg.value.features };
          } else if (res.msg?.$case === 'done') {
            opts.onSummary?.(res.msg.value);
          }
        }
        throwIfSourceFailed();
        if (pending.length > 0 || !sourceDone) {
          throw new CuriaError('INTERNAL', 'embed stage ended its stream before answering every slice');
        }
        return;
      } catch (err) {
        call.abort();
        throwIfSourceFailed();
        if (opts.signal.aborted) throw stageError('embed', err, { signal: opts.signal });
        if (isUnavailable(err) && attempt < opts.attempts) {
          opts.onRetry?.(attempt, err);
          await delay(opts.signal, 50 * 2 ** (attempt - 1));
          continue;
        }
        throw stageError('embed', err, { retryAfterMs: trailers.retryAfterMs, signal: opts.signal });
      } finally {
        admit();
        opts.signal.removeEventListener('abort', onAbort);
      }
    }
  } finally {
    // The pump may be waiting on `source`; the caller cancels that (it owns the study's signal).
    stopped = true;
    queue.fail(new CuriaError('CANCELLED', 'embed stream closed'));
    (windowOpen as (() => void) | null)?.();
    void pump;
  }
}
