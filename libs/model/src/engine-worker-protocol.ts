import type { ErrorCode } from '@curia/errors';

import type { LoadedBundle } from './bundle/load.js';
import type { EmbedOutputName, EngineInfo, EngineOptions } from './engine.js';

/** Engine options that can cross a thread boundary (no AbortSignal). */
export type WorkerEngineOptions = Omit<EngineOptions, 'signal'>;

/** First message to the engine thread: which bundle to open, how. */
export interface OpenMessage {
  readonly kind: 'open';
  readonly bundleDir: string;
  readonly options: WorkerEngineOptions;
}

/** One `run` call. `pixels` arrives as its own (transferred or cloned) buffer. */
export interface RunMessage {
  readonly kind: 'run';
  readonly id: number;
  readonly pixels: Float32Array;
  readonly batch: number;
  readonly outputs: readonly EmbedOutputName[];
  readonly inputChecked: boolean;
}

/** Releases the session; the thread exits after answering. */
export interface CloseMessage {
  readonly kind: 'close';
  readonly id: number;
}

/** Main thread -> engine thread. */
export type ToEngineThread = OpenMessage | RunMessage | CloseMessage;

/** A CuriaError (or any error) flattened for postMessage. */
export interface WireError {
  readonly code: ErrorCode;
  readonly message: string;
}

/** Engine thread -> main thread. `id` -1 answers `open`. */
export type FromEngineThread =
  | { readonly kind: 'opened'; readonly info: EngineInfo; readonly bundle: LoadedBundle }
  | {
      readonly kind: 'result';
      readonly id: number;
      readonly lastHiddenState?: Float32Array;
      readonly lastBlockPrenorm?: Float32Array;
    }
  | { readonly kind: 'closed'; readonly id: number }
  | { readonly kind: 'error'; readonly id: number; readonly error: WireError };
