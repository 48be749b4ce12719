import { createGunzip } from 'node:zlib';

import { CuriaError, isCuriaError } from '@curia/errors';

/** True when `bytes` starts with the gzip magic 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** The part of a decompressed stream a caller wants kept, decided once the head is known. */
export interface ByteRange {
  readonly start: number;
  readonly length: number;
}

/** Options of {@link gunzipRange}. */
export interface GunzipRangeOptions {
  /** Bytes of decompressed head passed to `plan` (fewer only when the stream is shorter). */
  readonly headBytes: number;
  /**
   * Inspects the head and returns the range to keep; throws to refuse the stream. Inflating pauses
   * while a returned promise is pending (e.g. waiting for memory to allocate the range).
   */
  readonly plan: (head: Uint8Array) => ByteRange | Promise<ByteRange>;
  /** Hard cap on decompressed bytes consumed; reaching it aborts the inflate. */
  readonly maxDecompressedBytes: number;
  readonly signal?: AbortSignal;
}

/**
 * Streams a gzip buffer through zlib and keeps only `[start, start + length)` of its output in a
 * single exactly-sized allocation. Decompression stops as soon as that range is filled, so a gzip
 * bomb never inflates past the planned size (and the plan is validated before allocating).
 */
export async function gunzipRange(
  compressed: Uint8Array,
  opts: GunzipRangeOptions,
): Promise<{ head: Uint8Array; body: Uint8Array }> {
  const gz = createGunzip({ chunkSize: 1 << 20 });
  const head = new Uint8Array(opts.headBytes);
  let headFill = 0;
  let range: ByteRange | null = null;
  let body: Uint8Array | null = null;
  let bodyFill = 0;
  let consumed = 0;
  const onAbort = (): void => {
    gz.destroy();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  gz.end(compressed);
  try {
    for await (const chunk of gz as AsyncIterable<Buffer>) {
      if (opts.signal?.aborted) break;
      const pos = consumed;
      consumed += chunk.length;
      if (headFill < head.length) {
        const n = Math.min(head.length - headFill, chunk.length);
        head.set(chunk.subarray(0, n), headFill);
        headFill += n;
      }
      if (range === null && headFill === head.length) {
        range = await checkedPlan(opts, head);
        body = new Uint8Array(range.length);
        bodyFill = copyHeadOverlap(head, headFill, range, body);
      }
      if (range && body) {
        // Stream positions below headFill were already taken from the head.
        const from = Math.max(range.start, pos, headFill);
        const to = Math.min(range.start + range.length, consumed);
        if (to > from) {
          body.set(chunk.subarray(from - pos, to - pos), from - range.start);
          bodyFill += to - from;
        }
        if (bodyFill === range.length) break;
      }
      if (consumed >= opts.maxDecompressedBytes) {
        throw new CuriaError(
          'RESOURCE_EXHAUSTED',
          `gzip stream inflates past the limit of ${opts.maxDecompressedBytes} bytes (maxDecompressedBytes)`,
        );
      }
    }
  } catch (e) {
    if (isCuriaError(e)) throw e;
    if (opts.signal?.aborted) throw cancelled();
    const code = (e as { code?: unknown }).code;
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `corrupt gzip stream (${typeof code === 'string' ? code : 'inflate failed'})`,
      {
        cause: e,
      },
    );
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    gz.destroy();
  }
  if (opts.signal?.aborted) throw cancelled();
  if (range === null) {
    // Stream shorter than the head: let the planner judge the short head (it rejects truncation).
    range = await checkedPlan(opts, head.subarray(0, headFill));
    body = new Uint8Array(range.length);
    bodyFill = copyHeadOverlap(head, headFill, range, body);
  }
  if (bodyFill < range.length || !body) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `truncated data: the gzip stream ends after ${consumed} bytes but ${range.start + range.length} are needed`,
    );
  }
  return { head: head.subarray(0, headFill), body };
}

function copyHeadOverlap(head: Uint8Array, headFill: number, range: ByteRange, body: Uint8Array): number {
  const avail = Math.max(0, Math.min(headFill - range.start, range.length));
  if (avail > 0) body.set(head.subarray(range.start, range.start + avail));
  return avail;
}

async function checkedPlan(opts: GunzipRangeOptions, head: Uint8Array): Promise<ByteRange> {
  const r = await opts.plan(head);
  if (r.start + r.length > opts.maxDecompressedBytes) {
    throw new CuriaError(
      'RESOURCE_EXHAUSTED',
      `data ends at byte ${r.start + r.length} of the decompressed stream, above the limit of ${opts.maxDecompressedBytes} bytes (maxDecompressedBytes)`,
    );
  }
  return r;
}

function cancelled(): CuriaError {
  return new CuriaError('CANCELLED', 'volume decoding was cancelled');
}
