import type { Client, CuriaCallOptions } from '@curia/client';
import { CuriaError } from '@curia/errors';
import type { common, preprocess } from '@curia/proto';
import { delay } from 'abort-controller-x';

import { isUnavailable, stageError, TrailerCapture } from './stage-errors.js';

/** A PreprocessService client (the bulk definition, or the generated one). */
export type PreprocessClient = Client<typeof preprocess.PreprocessServiceDefinition, CuriaCallOptions>;

/** Options of {@link openPreprocess}. */
export interface PreprocessStreamOptions {
  readonly start: preprocess.PreprocessStart;
  /**
   * The study's file chunks when it is uploaded (`start.source` is `streamed`), forwarded as they
   * come, never buffered. Errors it throws (a caller's malformed upload) reach the caller as they
   * are, not as a stage failure.
   */
  readonly upload?: AsyncIterator<common.FileChunk> | undefined;
  /** Largest upload forwarded, bytes (RESOURCE_EXHAUSTED beyond, naming `uploadLimitName`). */
  readonly maxUploadBytes: number;
  /** What to call the upload limit in the RESOURCE_EXHAUSTED message (an environment variable). */
  readonly uploadLimitName: string;
  /** Attempts on UNAVAILABLE before the first answer (only without an upload: an upload cannot be replayed). */
  readonly attempts: number;
  readonly signal: AbortSignal;
  readonly deadline?: Date | undefined;
  readonly onRetry?: () => void;
  /** Called once the upload has been forwarded completely, with its duration. */
  readonly onUploadDone?: (ms: number) => void;
}

/** An open Preprocess call whose geometry has arrived. */
export interface PreprocessStream {
  readonly geometry: preprocess.PreprocessGeometry;
  /** The preprocessed slices, in the order the service produces them (ascending canonical index). */
  slices(): AsyncGenerator<preprocess.PreprocessedSlice>;
  /** Time from opening the call to its last message (or to now while it runs), ms. */
  elapsedMs(): number;
  /** Cancels the call if it is still running. */
  close(): void;
}

/**
 * Opens a PreprocessService stream for a study, forwarding uploaded chunks without buffering
 * them, and waits for the geometry. A study given by reference is retried on another replica when
 * the first one is UNAVAILABLE before answering.
 */
export async function openPreprocess(
  client: PreprocessClient,
  o: PreprocessStreamOptions,
): Promise<PreprocessStream> {
  const t0 = performance.now();
  let uploadError: unknown = null;
  let uploadStarted = false;
  const forwardUpload = async function* (): AsyncGenerator<preprocess.PreprocessRequest> {
    yield { msg: { $case: 'start', value: o.start } };
    if (!o.upload) return;
    uploadStarted = true;
    let bytes = 0;
    try {
      for (;;) {
        const next = await o.upload.next();
        if (next.done) break;
        bytes += next.value.data.byteLength;
        if (bytes > o.maxUploadBytes) {
          throw new CuriaError(
            'RESOURCE_EXHAUSTED',
            `the upload exceeds ${o.maxUploadBytes} bytes (${o.uploadLimitName}); use start.ref for large studies`,
          );
        }
        yield { msg: { $case: 'chunk', value: next.value } };
      }
      o.onUploadDone?.(performance.now() - t0);
    } catch (err) {
      uploadError = err;
      throw err;
    }
  };

  for (let attempt = 1; ; attempt++) {
    const call = new AbortController();
    const onAbort = (): void => call.abort();
    o.signal.addEventListener('abort', onAbort);
    const trailers = new TrailerCapture();
    let finishedAt: number | null = null;
    const fail = (err: unknown): CuriaError => {
      call.abort();
      if (uploadError !== null) return stageError('preprocess', uploadError);
      return stageError('preprocess', err, { retryAfterMs: trailers.retryAfterMs, signal: o.signal });
    };
    const responses = client.preprocess(forwardUpload(), {
      signal: call.signal,
      deadline: o.deadline,
      onTrailer: trailers.onTrailer,
    });
    const it = responses[Symbol.asyncIterator]();
    try {
      let geometry: preprocess.PreprocessGeometry | undefined;
      while (!geometry) {
        const r = await it.next();
        if (r.done)
          throw new CuriaError('INTERNAL', 'preprocess ended its stream before sending the geometry');
        if (r.value.msg?.$case === 'geometry') geometry = r.value.msg.value;
      }
      return {
        geometry,
        slices: async function* () {
          try {
            for (;;) {
              const r = await it.next();
              if (r.done) break;
              const m = r.value.msg;
              if (m?.$case === 'slice') yield m.value;
            }
            finishedAt = performance.now();
          } catch (err) {
            throw fail(err);
          } finally {
            o.signal.removeEventListener('abort', onAbort);
          }
        },
        elapsedMs: () => (finishedAt ?? performance.now()) - t0,
        close: () => call.abort(),
      };
    } catch (err) {
      o.signal.removeEventListener('abort', onAbort);
      if (isUnavailable(err) && !uploadStarted && attempt < o.attempts && !o.signal.aborted) {
        call.abort();
        o.onRetry?.();
        await delay(o.signal, 50 * 2 ** (attempt - 1));
        continue;
      }
      throw fail(err);
    }
  }
}

/** A request stream whose messages are a `start` then file `chunk`s (AnalyzeStudy, Segment, …). */
type StartThenChunks = AsyncIterator<{
  readonly msg?: { readonly $case: string; readonly value: unknown } | undefined;
}>;

/**
 * The file chunks a caller uploads after its `start` message, for {@link PreprocessStreamOptions.upload}:
 * every later message must be a `chunk` (INVALID_ARGUMENT naming `rpc` otherwise).
 */
export async function* uploadedChunks(input: StartThenChunks, rpc: string): AsyncGenerator<common.FileChunk> {
  for (;;) {
    const next = await input.next();
    if (next.done) return;
    const m = next.value.msg;
    if (m?.$case !== 'chunk') {
      throw new CuriaError('INVALID_ARGUMENT', `after \`start\`, every ${rpc} message must be a \`chunk\``);
    }
    yield m.value as common.FileChunk;
  }
}
