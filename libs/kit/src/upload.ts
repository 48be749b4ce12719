import { CuriaError } from '@curia/errors';
import type { common } from '@curia/proto';

/** Caps of one upload, and the settings that set them (named in RESOURCE_EXHAUSTED messages). */
export interface UploadLimits {
  readonly maxBytes: number;
  readonly maxFiles: number;
  /** The variable behind `maxBytes`, e.g. `CURIA_PREPROCESS_MAX_UPLOAD_BYTES`. */
  readonly maxBytesSetting?: string;
  /** The variable behind `maxFiles`. */
  readonly maxFilesSetting?: string;
}

const MAX_FILE_NAME_BYTES = 255;
/** Largest buffer reserved up front from an announced size (larger files grow past it). */
const MAX_PREALLOCATED_BYTES = 256 * 1024 * 1024;

/**
 * Upload buffers kept between calls, bounded in bytes: a server receiving a steady stream of
 * similar studies reuses them instead of faulting in fresh memory for every upload (~40k page
 * faults for a 150 MiB CT: 100-200 ms of system CPU per call on the 2-core dev VM, more than the
 * copy itself). A reused buffer still holds an earlier upload's bytes past the new file's end;
 * only the bytes a call received are ever exposed (the accumulator hands out `[0, size)`).
 */
export class UploadBufferPool {
  private readonly free: Uint8Array[] = [];
  private held = 0;

  /** `onChange` hears the bytes held after every change (for a gauge). */
  constructor(
    readonly maxBytes: number,
    private readonly onChange: (heldBytes: number) => void = () => undefined,
  ) {}

  /** Bytes held for reuse. */
  get heldBytes(): number {
    return this.held;
  }

  /** A kept buffer of `bytes` to 5/4 of that (the smallest), else a fresh one of `bytes`. */
  take(bytes: number): Uint8Array {
    let best = -1;
    for (const [i, b] of this.free.entries()) {
      if (b.length >= bytes && b.length <= bytes * 1.25 && (best < 0 || b.length < this.free[best]!.length))
        best = i;
    }
    if (best < 0) return new Uint8Array(bytes);
    const b = this.free.splice(best, 1)[0]!;
    this.held -= b.length;
    this.onChange(this.held);
    return b;
  }

  /** Keeps `buf` (a whole buffer no one uses any more) for later calls, evicting the oldest to fit. */
  give(buf: Uint8Array): void {
    if (buf.length > this.maxBytes || buf.length === 0) return;
    while (this.held + buf.length > this.maxBytes) this.held -= this.free.shift()!.length;
    this.free.push(buf);
    this.held += buf.length;
    this.onChange(this.held);
  }
}

function exhausted(what: string): CuriaError {
  return new CuriaError('RESOURCE_EXHAUSTED', what);
}

/**
 * Accumulates the FileChunk messages of a streamed upload, one file at a time, enforcing the
 * FileChunk contract (name, contiguous offsets, no interleaving, no reused names) and the caps as
 * soon as they are exceeded. Each chunk's bytes are copied once, into the file's buffer (decoded
 * protobuf bytes are views of the message buffer, which is then free for reuse); a single-file
 * upload whose size was announced gets its whole buffer up front (from `pool` when given; call
 * {@link recycle} once the files are no longer used), other files grow theirs by doubling.
 */
export class UploadAccumulator {
  private readonly done: { name: string; data: Uint8Array }[] = [];
  private readonly names = new Set<string>();
  private current: { name: string; buf: Uint8Array; size: number } | null = null;
  private total = 0;
  private sizeHint = 0;
  private pooled: Uint8Array | null = null;

  private readonly bytesSetting: string;
  private readonly filesSetting: string;

  constructor(
    private readonly limits: UploadLimits,
    private readonly pool?: UploadBufferPool,
  ) {
    this.bytesSetting = limits.maxBytesSetting ?? 'the upload byte limit';
    this.filesSetting = limits.maxFilesSetting ?? 'the upload file limit';
  }

  /** Returns the buffer taken from the pool; the files handed out must no longer be used. */
  recycle(): void {
    if (this.pooled) this.pool?.give(this.pooled);
    this.pooled = null;
  }

  /** Bytes received so far over all files. */
  get bytesReceived(): number {
    return this.total;
  }

  /** Bytes the first file's buffer takes at once (an announced single-file size, capped), else 0. */
  get preallocatedBytes(): number {
    return this.sizeHint;
  }

  /** Files completed so far. */
  get fileCount(): number {
    return this.done.length;
  }

  /** Refuses early when the client announces an upload above the caps. */
  checkAnnounced(source: common.StreamedSource): void {
    if (source.totalBytes > this.limits.maxBytes) {
      throw exhausted(
        `streamed.total_bytes ${source.totalBytes} exceeds the upload limit of ${this.limits.maxBytes} bytes (${this.bytesSetting})`,
      );
    }
    if (source.fileCount > this.limits.maxFiles) {
      throw exhausted(
        `streamed.file_count ${source.fileCount} exceeds the limit of ${this.limits.maxFiles} files (${this.filesSetting})`,
      );
    }
    if (source.fileCount === 1) this.sizeHint = Math.min(source.totalBytes, MAX_PREALLOCATED_BYTES);
  }

  /** Adds one chunk. */
  add(chunk: common.FileChunk): void {
    const name = chunk.fileName;
    if (name.length === 0) throw new CuriaError('INVALID_ARGUMENT', 'chunk.file_name is empty');
    if (Buffer.byteLength(name) > MAX_FILE_NAME_BYTES || /[/\\]/.test(name)) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `chunk.file_name must be a base name of at most ${MAX_FILE_NAME_BYTES} bytes without '/' or '\\'`,
      );
    }
    let cur = this.current;
    if (cur && cur.name !== name) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `chunk for another file arrived before chunk.last_chunk of file #${this.done.length}; send files one at a time`,
      );
    }
    if (!cur) {
      if (this.names.has(name)) {
        throw new CuriaError(
          'INVALID_ARGUMENT',
          `chunk.file_name of file #${this.done.length} reuses an earlier name`,
        );
      }
      if (this.done.length + 1 > this.limits.maxFiles) {
        throw exhausted(`upload has more than ${this.limits.maxFiles} files (${this.filesSetting})`);
      }
      this.names.add(name);
      let buf: Uint8Array = new Uint8Array(0);
      if (this.done.length === 0 && this.sizeHint > 0) {
        buf = this.pool ? this.pool.take(this.sizeHint) : new Uint8Array(this.sizeHint);
        if (this.pool) this.pooled = buf;
      }
      cur = { name, buf, size: 0 };
      this.current = cur;
    }
    if (chunk.offset !== cur.size) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `chunk.offset is ${chunk.offset} but ${cur.size} bytes of file #${this.done.length} were received`,
      );
    }
    this.total += chunk.data.length;
    if (this.total > this.limits.maxBytes) {
      throw exhausted(`upload exceeds the limit of ${this.limits.maxBytes} bytes (${this.bytesSetting})`);
    }
    if (chunk.data.length > 0) {
      const end = cur.size + chunk.data.length;
      if (end > cur.buf.length) {
        // A file in one chunk (a typical DICOM instance) gets an exact buffer; longer ones double.
        const grown = new Uint8Array(
          cur.size === 0 && chunk.lastChunk ? end : Math.max(end, 2 * cur.buf.length),
        );
        grown.set(cur.buf.subarray(0, cur.size));
        cur.buf = grown;
      }
      cur.buf.set(chunk.data, cur.size);
      cur.size = end;
    }
    if (chunk.lastChunk) {
      // Trim a buffer that grew well past the file (a subarray would pin the unused tail).
      const data =
        cur.buf.length - cur.size > cur.size / 4 ? cur.buf.slice(0, cur.size) : cur.buf.subarray(0, cur.size);
      this.done.push({ name: cur.name, data });
      this.current = null;
    }
  }

  /** Ends the upload (client half-close) and hands the files over. */
  finish(): { name: string; data: Uint8Array }[] {
    if (this.current) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `the stream ended before chunk.last_chunk of file #${this.done.length}`,
      );
    }
    if (this.done.length === 0) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        'the upload is empty: send the file(s) as chunk messages after start',
      );
    }
    if (this.total === 0) throw new CuriaError('INVALID_ARGUMENT', 'the uploaded files are empty');
    return this.done.splice(0);
  }
}
