import { CuriaError } from '@curia/errors';
import type { common } from '@curia/proto';

/** Caps of one upload. */
export interface UploadLimits {
  readonly maxBytes: number;
  readonly maxFiles: number;
}

const MAX_FILE_NAME_BYTES = 255;
/** Largest buffer reserved up front from an announced size (larger files grow past it). */
const MAX_PREALLOCATED_BYTES = 256 * 1024 * 1024;

function exhausted(what: string): CuriaError {
  return new CuriaError('RESOURCE_EXHAUSTED', what);
}

/**
 * Accumulates the FileChunk messages of a streamed upload, one file at a time, enforcing the
 * FileChunk contract (name, contiguous offsets, no interleaving, no reused names) and the caps as
 * soon as they are exceeded. Each chunk's bytes are copied once, into the file's buffer (decoded
 * protobuf bytes are views of the message buffer, which is then free for reuse); a single-file
 * upload whose size was announced gets its whole buffer up front, other files grow theirs by
 * doubling.
 */
export class UploadAccumulator {
  private readonly done: { name: string; data: Uint8Array }[] = [];
  private readonly names = new Set<string>();
  private current: { name: string; buf: Uint8Array; size: number } | null = null;
  private total = 0;
  private sizeHint = 0;

  constructor(private readonly limits: UploadLimits) {}

  /** Bytes received so far over all files. */
  get bytesReceived(): number {
    return this.total;
  }

  /** Files completed so far. */
  get fileCount(): number {
    return this.done.length;
  }

  /** Refuses early when the client announces an upload above the caps. */
  checkAnnounced(source: common.StreamedSource): void {
    if (source.totalBytes > this.limits.maxBytes) {
      throw exhausted(
        `streamed.total_bytes ${source.totalBytes} exceeds the upload limit of ${this.limits.maxBytes} bytes (CURIA_PREPROCESS_MAX_UPLOAD_BYTES)`,
      );
    }
    if (source.fileCount > this.limits.maxFiles) {
      throw exhausted(
        `streamed.file_count ${source.fileCount} exceeds the limit of ${this.limits.maxFiles} files (CURIA_PREPROCESS_MAX_UPLOAD_FILES)`,
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
        throw exhausted(
          `upload has more than ${this.limits.maxFiles} files (CURIA_PREPROCESS_MAX_UPLOAD_FILES)`,
        );
      }
      this.names.add(name);
      cur = { name, buf: new Uint8Array(this.done.length === 0 ? this.sizeHint : 0), size: 0 };
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
      throw exhausted(
        `upload exceeds the limit of ${this.limits.maxBytes} bytes (CURIA_PREPROCESS_MAX_UPLOAD_BYTES)`,
      );
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
