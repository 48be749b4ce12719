import { open } from 'node:fs/promises';

import { DTYPE_BYTES, isDType, numel, type DType } from './dtype.js';
import { TensorFormatError, type RawTensor } from './tensor.js';

/** Upper bound on a safetensors JSON header; larger headers are rejected as corrupt. */
export const MAX_SAFETENSORS_HEADER_BYTES = 100 * 1024 * 1024;

/** One entry of a safetensors header. */
export interface SafetensorsEntry {
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Byte range relative to the start of the data section. */
  readonly begin: number;
  readonly end: number;
}

/** A parsed safetensors header: tensor entries plus the free-form string metadata. */
export interface SafetensorsHeader {
  readonly entries: ReadonlyMap<string, SafetensorsEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  /** Offset of the data section from the start of the file (8 + header length). */
  readonly dataOffset: number;
}

function parseHeaderJson(json: string, dataBytes: number | null): SafetensorsHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new TensorFormatError('safetensors header is not valid JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new TensorFormatError('safetensors header is not a JSON object');
  }
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = Object.fromEntries(
        Object.entries((value ?? {}) as Record<string, unknown>).map(([k, v]) => [k, String(v)]),
      );
      continue;
    }
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof v.dtype !== 'string' || !isDType(v.dtype)) {
      throw new TensorFormatError(`safetensors tensor '${name}' has unsupported dtype ${String(v.dtype)}`);
    }
    if (!Array.isArray(v.shape) || !Array.isArray(v.data_offsets) || v.data_offsets.length !== 2) {
      throw new TensorFormatError(`safetensors tensor '${name}' lacks shape or data_offsets`);
    }
    const shape = v.shape.map(Number);
    const [begin, end] = v.data_offsets.map(Number) as [number, number];
    const expected = numel(shape) * DTYPE_BYTES[v.dtype];
    if (!(end - begin === expected && begin >= 0 && (dataBytes === null || end <= dataBytes))) {
      throw new TensorFormatError(`safetensors tensor '${name}' has inconsistent offsets [${begin}, ${end}]`);
    }
    entries.set(name, { dtype: v.dtype, shape, begin, end });
  }
  return { entries, metadata, dataOffset: 0 };
}

/** Parses a complete in-memory safetensors buffer; tensors are zero-copy views into `buf`. */
export function decodeSafetensors(buf: Uint8Array): {
  tensors: Map<string, RawTensor>;
  metadata: Readonly<Record<string, string>>;
} {
  if (buf.byteLength < 8)
    throw new TensorFormatError('safetensors buffer is shorter than its 8-byte header length');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = Number(dv.getBigUint64(0, true));
  if (headerLen > MAX_SAFETENSORS_HEADER_BYTES || 8 + headerLen > buf.byteLength) {
    throw new TensorFormatError(`safetensors header length ${headerLen} exceeds the buffer`);
  }
  const json = new TextDecoder().decode(buf.subarray(8, 8 + headerLen));
  const dataStart = 8 + headerLen;
  const header = parseHeaderJson(json, buf.byteLength - dataStart);
  const tensors = new Map<string, RawTensor>();
  for (const [name, e] of header.entries) {
    tensors.set(name, {
      dtype: e.dtype,
      shape: e.shape,
      data: buf.subarray(dataStart + e.begin, dataStart + e.end),
    });
  }
  return { tensors, metadata: header.metadata };
}

/**
 * A safetensors file opened for selective reads: the header is parsed once and each tensor is
 * read on demand, so large unused tensors (e.g. a backbone copy inside a head checkpoint) never
 * enter memory.
 */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly header: SafetensorsHeader,
  ) {}

  /** Opens `path` and parses its header. */
  static async open(path: string): Promise<SafetensorsFile> {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      if (size < 8) throw new TensorFormatError(`${path}: too short to be a safetensors file`);
      const lenBuf = Buffer.alloc(8);
      await fh.read(lenBuf, 0, 8, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen > MAX_SAFETENSORS_HEADER_BYTES || 8 + headerLen > size) {
        throw new TensorFormatError(`${path}: safetensors header length ${headerLen} exceeds the file`);
      }
      const json = Buffer.alloc(headerLen);
      await fh.read(json, 0, headerLen, 8);
      const parsed = parseHeaderJson(json.toString('utf8'), size - 8 - headerLen);
      return new SafetensorsFile(path, { ...parsed, dataOffset: 8 + headerLen });
    } finally {
      await fh.close();
    }
  }

  /** Tensor names in header order. */
  names(): string[] {
    return [...this.header.entries.keys()];
  }

  /** Reads one tensor's bytes from disk. Throws when the name is absent. */
  async read(name: string): Promise<RawTensor> {
    const e = this.header.entries.get(name);
    if (!e) throw new TensorFormatError(`${this.path}: no tensor named '${name}'`);
    const fh = await open(this.path, 'r');
    try {
      // Allocate through an ArrayBuffer so typed-array views over it are aligned.
      const data = new Uint8Array(new ArrayBuffer(e.end - e.begin));
      await fh.read(data, 0, data.byteLength, this.header.dataOffset + e.begin);
      return { dtype: e.dtype, shape: e.shape, data };
    } finally {
      await fh.close();
    }
  }

  /** Reads every tensor whose name passes `filter`. */
  async readAll(filter: (name: string) => boolean = () => true): Promise<Map<string, RawTensor>> {
    const out = new Map<string, RawTensor>();
    for (const name of this.names()) if (filter(name)) out.set(name, await this.read(name));
    return out;
  }
}

/** Reads a whole safetensors file into memory. */
export async function readSafetensors(path: string): Promise<{
  tensors: Map<string, RawTensor>;
  metadata: Readonly<Record<string, string>>;
}> {
  const f = await SafetensorsFile.open(path);
  return { tensors: await f.readAll(), metadata: f.header.metadata };
}

/** A tensor whose data comes in consecutive pieces (e.g. one per slice), written without joining them. */
export interface ChunkedTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly chunks: readonly Uint8Array[];
}

/** The 8-byte length + JSON header, and the data pieces in file order. */
function safetensorsLayout(
  tensors: Iterable<[string, RawTensor | ChunkedTensor]>,
  metadata: Readonly<Record<string, string>>,
): { head: Buffer; parts: Uint8Array[] } {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    const chunks = 'chunks' in t ? t.chunks : [t.data];
    const bytes = chunks.reduce((n, c) => n + c.byteLength, 0);
    const expected = numel(t.shape) * DTYPE_BYTES[t.dtype];
    if (bytes !== expected) {
      throw new TensorFormatError(
        `tensor '${name}': ${bytes} bytes for shape [${t.shape.join(', ')}] ${t.dtype}`,
      );
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + expected] };
    parts.push(...chunks);
    offset += expected;
  }
  let json = JSON.stringify(header);
  // Pad so the data section starts 8-byte aligned, as the reference implementation does.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const head = Buffer.alloc(8 + Buffer.byteLength(json));
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  head.write(json, 8, 'utf8');
  return { head, parts };
}

/** Serialises tensors (in the given order) and string metadata to the safetensors format. */
export function encodeSafetensors(
  tensors: Iterable<[string, RawTensor | ChunkedTensor]>,
  metadata: Readonly<Record<string, string>> = {},
): Buffer {
  const { head, parts } = safetensorsLayout(tensors, metadata);
  return Buffer.concat([head, ...parts]);
}

/**
 * Writes tensors and metadata to a safetensors file, streaming each tensor's data (or chunks) as
 * given: the file is never assembled in memory.
 */
export async function writeSafetensors(
  path: string,
  tensors: Iterable<[string, RawTensor | ChunkedTensor]>,
  metadata: Readonly<Record<string, string>> = {},
): Promise<void> {
  const { head, parts } = safetensorsLayout(tensors, metadata);
  const all = [head, ...parts];
  const f = await open(path, 'w');
  try {
    for (let i = 0; i < all.length; i += WRITEV_BATCH) {
      const batch = all.slice(i, i + WRITEV_BATCH);
      const want = batch.reduce((n, b) => n + b.byteLength, 0);
      const { bytesWritten } = await f.writev(batch);
      if (bytesWritten !== want) throw new Error(`short write to ${path}: ${bytesWritten} of ${want} bytes`);
    }
  } finally {
    await f.close();
  }
}

/** Buffers per writev call (below every platform's IOV_MAX). */
const WRITEV_BATCH = 256;
