import { Buffer } from 'node:buffer';

import * as common from './gen/index.curia.common.v1.js';
import * as embed from './gen/index.curia.embed.v1.js';
import * as gateway from './gen/index.curia.gateway.v1.js';
import * as preprocess from './gen/index.curia.preprocess.v1.js';

/**
 * Encoders for the messages that carry ~1 MiB payloads (slice pixels, upload chunks), with one
 * allocation and one copy of the payload. The generated writer grows its buffer by doubling,
 * shifts the payload once per nesting level to widen length prefixes, then copies the result
 * out: about six copies and several large allocations per message, and the garbage that keeps
 * the collector busy on every hop. The small fields are still encoded by the generated code and
 * the pieces are laid out as it lays them out (fields in number order), so the bytes are
 * identical to the generated encoder's (tests check this).
 */

/** A part of a message: bytes already encoded, or a length-delimited field assembled from parts. */
export type Piece = Uint8Array | { readonly field: number; readonly parts: readonly Piece[] };

/** Bytes of `v` as a protobuf varint (0 ≤ v < 2^53). */
function varintSize(v: number): number {
  let n = 1;
  while (v > 0x7f) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(buf: Uint8Array, pos: number, v: number): number {
  while (v > 0x7f) {
    buf[pos++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

/** Encoded size of a piece list (each nested field: tag + length varint + content). */
function sizeOf(parts: readonly Piece[], sizes: Map<Piece, number>): number {
  let n = 0;
  for (const p of parts) {
    if (p instanceof Uint8Array) {
      n += p.length;
      continue;
    }
    const inner = sizeOf(p.parts, sizes);
    sizes.set(p, inner);
    n += varintSize((p.field << 3) | 2) + varintSize(inner) + inner;
  }
  return n;
}

/** Where {@link writeParts} left out the `skip` piece (its position in the output without it). */
interface Skip {
  readonly piece: Uint8Array;
  at: number;
}

function writeParts(
  out: Uint8Array,
  pos: number,
  parts: readonly Piece[],
  sizes: Map<Piece, number>,
  skip?: Skip,
): number {
  for (const p of parts) {
    if (p === skip?.piece) {
      skip.at = pos;
      continue;
    }
    if (p instanceof Uint8Array) {
      out.set(p, pos);
      pos += p.length;
      continue;
    }
    pos = writeVarint(out, pos, (p.field << 3) | 2);
    pos = writeVarint(out, pos, sizes.get(p)!);
    pos = writeParts(out, pos, p.parts, sizes, skip);
  }
  return pos;
}

/** Lays `parts` out in one Buffer: one allocation, each byte copied once. */
export function assemble(parts: readonly Piece[]): Uint8Array {
  const sizes = new Map<Piece, number>();
  const out = Buffer.allocUnsafe(sizeOf(parts, sizes));
  writeParts(out, 0, parts, sizes);
  return out;
}

/**
 * Lays `parts` out around `payload` (one of its pieces) in the payload's own buffer: only the
 * envelope is written, the payload is not copied. Null when the room around it is too small.
 */
function assembleAround(parts: readonly Piece[], payload: Uint8Array): Uint8Array | null {
  const sizes = new Map<Piece, number>();
  const total = sizeOf(parts, sizes);
  const envelope = new Uint8Array(total - payload.length);
  const skip: Skip = { piece: payload, at: -1 };
  writeParts(envelope, 0, parts, sizes, skip);
  const start = payload.byteOffset - skip.at;
  if (skip.at < 0 || start < 0 || start + total > payload.buffer.byteLength) return null;
  const whole = new Uint8Array(payload.buffer, start, total);
  whole.set(envelope.subarray(0, skip.at), 0);
  whole.set(envelope.subarray(skip.at), skip.at + payload.length);
  return whole;
}

/** Payloads lent with {@link lendEnvelope}, each with what to run once it was encoded. */
const lent = new WeakMap<Uint8Array, () => void>();

/**
 * Spare bytes a lent slice payload needs before and after it for {@link encodePreprocessResponse}
 * to frame it in place: PreprocessResponse.slice and PreprocessedSlice's tags and lengths, the
 * mapping, the Tensor header (dtype, a rank-3 shape) and, after the values, the raw stats.
 */
export const SLICE_ENVELOPE_ROOM = { headroom: 96, tailroom: 64 } as const;

/**
 * Lends `payload`'s buffer to the encoder: the next message that carries exactly this view as a
 * slice's pixel data is encoded in place, its envelope written into the spare bytes around the
 * payload (see {@link SLICE_ENVELOPE_ROOM}; with too little room it is copied as usual), so ~1 MiB
 * is not copied on the event loop. `onEncoded` runs in a microtask after that encoding, when the
 * bytes have been consumed: the gRPC serializer copies what the encoder returns synchronously.
 * Lend only buffers nothing else reads or writes, and encode each lent message once.
 */
export function lendEnvelope(payload: Uint8Array, onEncoded: () => void = () => undefined): void {
  lent.set(payload, onEncoded);
}

/** Assembles in place when `payload` was lent and fits, else with one copy. */
function assembleLent(parts: readonly Piece[], payload: Uint8Array | undefined): Uint8Array {
  const onEncoded = payload && lent.get(payload);
  if (!payload || !onEncoded) return assemble(parts);
  lent.delete(payload);
  queueMicrotask(onEncoded);
  return assembleAround(parts, payload) ?? assemble(parts);
}

const EMPTY = new Uint8Array(0);

/** A Tensor as field `field` of its parent: header by the generated code, `data` (field 3) appended. */
export function tensorPiece(field: number, t: common.Tensor): Piece {
  const head = common.Tensor.encode({ ...t, data: EMPTY }).finish();
  return { field, parts: t.data.length > 0 ? [head, { field: 3, parts: [t.data] }] : [head] };
}

/** `EmbedRequest{slice}`: pixels (and the mask) copied once. */
export function encodeEmbedSliceRequest(slice: embed.EmbedSlice): Uint8Array {
  const parts: Piece[] = [embed.EmbedSlice.encode({ sliceId: slice.sliceId }).finish()];
  if (slice.pixels) parts.push(tensorPiece(2, slice.pixels));
  if (slice.mask) parts.push(tensorPiece(3, slice.mask));
  return assemble([{ field: 2, parts }]);
}

/** `FileChunk` as field `field` of its parent: `data` (field 2) copied once. */
function fileChunkPiece(field: number, c: common.FileChunk): Piece {
  const head = common.FileChunk.encode({
    fileName: c.fileName,
    data: EMPTY,
    lastChunk: false,
    offset: 0,
  }).finish();
  const tail = common.FileChunk.encode({
    fileName: '',
    data: EMPTY,
    lastChunk: c.lastChunk,
    offset: c.offset,
  }).finish();
  return { field, parts: c.data.length > 0 ? [head, { field: 2, parts: [c.data] }, tail] : [head, tail] };
}

/** `PreprocessRequest{chunk}`: the chunk's bytes copied once. */
export function encodePreprocessChunkRequest(chunk: common.FileChunk): Uint8Array {
  return assemble([fileChunkPiece(2, chunk)]);
}

/**
 * `PreprocessResponse{slice}`: the pixels copied once, or not at all when lent with
 * {@link lendEnvelope} (the result is then a view of their buffer, valid until `onEncoded` ran).
 */
export function encodePreprocessSliceResponse(slice: preprocess.PreprocessedSlice): Uint8Array {
  const parts: Piece[] = [];
  const pixels = slice.pixels;
  if (pixels && pixels.data.byteLength === 0 && pixels.shape.length > 0 && pixels.shape.every((d) => d > 0)) {
    // A released (transferred) buffer reads as empty: never send a slice without its values.
    throw new Error(`slice pixels of shape [${pixels.shape.join(', ')}] hold no bytes (a released buffer?)`);
  }
  if (slice.mapping) parts.push(preprocess.PreprocessedSlice.encode({ mapping: slice.mapping }).finish());
  if (pixels) parts.push(tensorPiece(2, pixels));
  if (slice.rawStats) parts.push(preprocess.PreprocessedSlice.encode({ rawStats: slice.rawStats }).finish());
  return assembleLent([{ field: 2, parts }], pixels?.data);
}

type Encoder<T> = (message: T) => { finish(): Uint8Array };

function withFastPath<T>(
  generated: Encoder<T>,
  fast: (message: T) => Uint8Array | null,
): (message: T) => { finish(): Uint8Array } {
  return (message) => {
    const bytes = fast(message);
    return bytes ? { finish: () => bytes } : generated(message);
  };
}

/** EmbedRequest's encoder with the slice fast path (for clients of EmbedService). */
export const encodeEmbedRequest = withFastPath<embed.EmbedRequest>(
  (m) => embed.EmbedRequest.encode(m),
  (m) => (m.msg?.$case === 'slice' ? encodeEmbedSliceRequest(m.msg.value) : null),
);

/** PreprocessRequest's encoder with the chunk fast path (for clients of PreprocessService). */
export const encodePreprocessRequest = withFastPath<preprocess.PreprocessRequest>(
  (m) => preprocess.PreprocessRequest.encode(m),
  (m) => (m.msg?.$case === 'chunk' ? encodePreprocessChunkRequest(m.msg.value) : null),
);

/** AnalyzeStudyRequest's encoder with the chunk fast path (for clients of GatewayService). */
export const encodeAnalyzeStudyRequest = withFastPath<gateway.AnalyzeStudyRequest>(
  (m) => gateway.AnalyzeStudyRequest.encode(m),
  (m) => (m.msg?.$case === 'chunk' ? assemble([fileChunkPiece(2, m.msg.value)]) : null),
);

/** PreprocessResponse's encoder with the slice fast path (for PreprocessService servers). */
export const encodePreprocessResponse = withFastPath<preprocess.PreprocessResponse>(
  (m) => preprocess.PreprocessResponse.encode(m),
  (m) => (m.msg?.$case === 'slice' ? encodePreprocessSliceResponse(m.msg.value) : null),
);

/**
 * EmbedService's definition for clients: the generated one (same methods, paths and bytes on
 * the wire) with EmbedRequest encoded by {@link encodeEmbedRequest}.
 */
export const EmbedServiceBulkClientDefinition = {
  ...embed.EmbedServiceDefinition,
  methods: {
    ...embed.EmbedServiceDefinition.methods,
    embed: {
      ...embed.EmbedServiceDefinition.methods.embed,
      requestType: { ...embed.EmbedRequest, encode: encodeEmbedRequest },
    },
  },
} as const;

/**
 * PreprocessService's definition with the bulk encoders on both sides: clients send chunks, and
 * servers send slices, with one copy each. Same methods, paths and bytes on the wire.
 */
export const PreprocessServiceBulkDefinition = {
  ...preprocess.PreprocessServiceDefinition,
  methods: {
    ...preprocess.PreprocessServiceDefinition.methods,
    preprocess: {
      ...preprocess.PreprocessServiceDefinition.methods.preprocess,
      requestType: { ...preprocess.PreprocessRequest, encode: encodePreprocessRequest },
      responseType: { ...preprocess.PreprocessResponse, encode: encodePreprocessResponse },
    },
  },
} as const;

/**
 * GatewayService's definition for clients: the generated one (same methods, paths and bytes on
 * the wire) with uploaded chunks encoded by {@link encodeAnalyzeStudyRequest}.
 */
export const GatewayServiceBulkClientDefinition = {
  ...gateway.GatewayServiceDefinition,
  methods: {
    ...gateway.GatewayServiceDefinition.methods,
    analyzeStudy: {
      ...gateway.GatewayServiceDefinition.methods.analyzeStudy,
      requestType: { ...gateway.AnalyzeStudyRequest, encode: encodeAnalyzeStudyRequest },
    },
  },
} as const;
