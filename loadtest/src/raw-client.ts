import { Client, credentials, Metadata, status, type ClientDuplexStream } from '@grpc/grpc-js';

import { createCuriaChannel } from '@curia/client';

import type { CallOutcome } from './generator.js';

const identity = (b: Buffer): Buffer => b;

/** `Buffer` view of encoded protobuf bytes (no copy). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The gRPC status name of a numeric code (`14` → `UNAVAILABLE`). */
export function statusName(code: number): string {
  return status[code] ?? `CODE_${code}`;
}

function retryAfter(metadata: Metadata | undefined): number | undefined {
  const v = metadata?.get('retry-after-ms')[0];
  return v === undefined ? undefined : Number(v);
}

/**
 * A bare grpc-js client for load generation: pre-encoded request bytes, no middleware, no
 * per-call decoding beyond what the scenario needs. The channel is the platform's
 * (`createCuriaChannel`: round_robin over every address of the target, keepalive, message
 * limits), so it balances and re-resolves exactly like production clients.
 */
export class RawClient {
  private readonly client: Client;

  constructor(target: string) {
    const channel = createCuriaChannel(target);
    this.client = new Client(channel.getTarget(), credentials.createInsecure(), { channelOverride: channel });
  }

  /** A unary call with already-encoded request bytes; resolves with its status. */
  unary(path: string, request: Buffer, deadline: number, signal: AbortSignal): Promise<CallOutcome> {
    return new Promise((resolve) => {
      const call = this.client.makeUnaryRequest(
        path,
        identity,
        identity,
        request,
        { deadline },
        () => undefined,
      );
      const cancel = (): void => call.cancel();
      signal.addEventListener('abort', cancel, { once: true });
      call.on('status', (s) => {
        signal.removeEventListener('abort', cancel);
        resolve({
          code: statusName(s.code),
          peer: safePeer(call.getPeer()),
          retryAfterMs: retryAfter(s.metadata),
          details: s.details,
        });
      });
    });
  }

  /**
   * A bidi-streaming call: writes `messages` (with flow control), half-closes, and counts the
   * responses that `isUnit` accepts (e.g. Embed results). Resolves with its status.
   */
  bidi(
    path: string,
    messages: readonly Buffer[],
    isUnit: (response: Buffer) => boolean,
    deadline: number,
    signal: AbortSignal,
  ): Promise<CallOutcome> {
    return new Promise((resolve) => {
      const call: ClientDuplexStream<Buffer, Buffer> = this.client.makeBidiStreamRequest(
        path,
        identity,
        identity,
        new Metadata(),
        { deadline },
      );
      let units = 0;
      let finished = false;
      const cancel = (): void => call.cancel();
      signal.addEventListener('abort', cancel, { once: true });
      call.on('data', (msg: Buffer) => {
        if (isUnit(msg)) units++;
      });
      // The status event carries the outcome; 'error' only duplicates it for non-OK calls.
      call.on('error', () => undefined);
      call.on('status', (s) => {
        finished = true;
        signal.removeEventListener('abort', cancel);
        resolve({
          code: statusName(s.code),
          peer: safePeer(call.getPeer()),
          units,
          retryAfterMs: retryAfter(s.metadata),
          details: s.details,
        });
      });
      void (async () => {
        for (const m of messages) {
          if (signal.aborted || finished) return;
          if (!call.write(m)) {
            await new Promise<void>((r) => {
              const done = (): void => {
                call.off('drain', done);
                call.off('status', done);
                r();
              };
              call.on('drain', done);
              call.on('status', done);
            });
          }
        }
        if (!finished) call.end();
      })();
    });
  }

  close(): void {
    this.client.close();
  }
}

function safePeer(peer: string): string {
  return peer && peer !== 'unknown' ? peer.replace(/^ipv4:/, '') : 'unknown';
}
