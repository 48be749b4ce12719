import { AsyncQueue } from '@curia/kit';
import type { common, gateway, segment } from '@curia/proto';
import { stageError, TrailerCapture, type SegmentClient } from '@curia/stages';

type Response = gateway.AnalyzeStudyResponse;

/** Slices a SegmentFeatures call may have queued and not yet sent, per head (bounds gateway memory). */
const SEGMENT_WINDOW = 8;

interface HeadCall {
  readonly requests: AsyncQueue<segment.SegmentFeaturesRequest>;
  /** Resolves when the request stream takes a message (room in the window) or the call fails. */
  room: (() => void) | null;
  done: Promise<void>;
}

/**
 * Streams a study's patch tokens to SegmentService, one SegmentFeatures call per segmentation
 * head, and relays their answers as `segmentation` messages. Each call's queue of unsent slices is
 * bounded, so a slow segment replica slows the study instead of growing the gateway's memory.
 */
export class SegmentationRelay {
  private readonly calls: HeadCall[];
  private readonly out: Response[] = [];
  private failure: Error | null = null;

  constructor(
    client: SegmentClient,
    /** Each head as the caller named it (how its answers are labelled) and the version it resolved to. */
    heads: readonly { readonly named: string; readonly ref: string }[],
    start: Omit<segment.SegmentFeaturesStart, 'head'>,
    o: { readonly signal: AbortSignal; readonly deadline: Date },
  ) {
    this.calls = heads.map(({ named, ref }) => {
      const requests = new AsyncQueue<segment.SegmentFeaturesRequest>();
      requests.push({ msg: { $case: 'start', value: { ...start, head: ref } } });
      const call: HeadCall = { requests, room: null, done: Promise.resolve() };
      const wake = (): void => {
        const room = call.room;
        call.room = null;
        room?.();
      };
      const taken = async function* (): AsyncGenerator<segment.SegmentFeaturesRequest> {
        for await (const r of requests) {
          wake();
          yield r;
        }
      };
      const trailers = new TrailerCapture();
      call.done = (async () => {
        for await (const r of client.segmentFeatures(taken(), {
          signal: o.signal,
          deadline: o.deadline,
          onTrailer: trailers.onTrailer,
        })) {
          const m = r.response;
          if (m && m.msg?.$case !== 'progress') {
            this.out.push({ msg: { $case: 'segmentation', value: { head: named, response: m } } });
          }
        }
      })().catch((err: unknown) => {
        this.failure ??= stageError('segment', err, {
          retryAfterMs: trailers.retryAfterMs,
          signal: o.signal,
        });
        requests.fail(new Error('segmentation failed'));
        wake();
      });
      return call;
    });
  }

  /** Sends one slice's tokens to every head (waiting while a head's window is full). */
  async send(mapping: common.SliceMapping, tokens: common.Tensor): Promise<void> {
    this.throwIfFailed();
    for (const c of this.calls) {
      while (c.requests.length >= SEGMENT_WINDOW) {
        await new Promise<void>((r) => (c.room = r));
        this.throwIfFailed();
      }
      c.requests.push({ msg: { $case: 'slice', value: { mapping, patchTokens: tokens } } });
    }
  }

  /** The messages the heads answered so far. */
  *ready(): Generator<Response> {
    this.throwIfFailed();
    yield* this.out.splice(0);
  }

  /** Ends the request streams and yields the heads' remaining messages once they have all answered. */
  async *finish(): AsyncGenerator<Response> {
    for (const c of this.calls) c.requests.close();
    await Promise.all(this.calls.map((c) => c.done));
    yield* this.ready();
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
  }
}
