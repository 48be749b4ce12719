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

function writeParts(
  out: Uint8Array,
  pos: number,
  parts: readonly Piece[],
  sizes: Map<Piece, number>,
): number {
  for (const p of parts) {
    if (p instanceof Uint8Array) {
      out.set(p, pos);
      pos += p.length;
      continue;
    }
    pos = writeVarint(out, pos, (p.field << 3) | 2);
    pos = writeVarint(out, pos, sizes.get(p)!);
    pos = writeParts(out, pos, p.parts, sizes);
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

/** `PreprocessResponse{slice}`: the pixels copied once. */
export function encodePreprocessSliceResponse(slice: preprocess.PreprocessedSlice): Uint8Array {
  const parts: Piece[] = [];
  if (slice.mapping) parts.push(preprocess.PreprocessedSlice.encode({ mapping: slice.mapping }).finish());
  if (slice.pixels) parts.push(tensorPiece(2, slice.pixels));
  if (slice.rawStats) parts.push(preprocess.PreprocessedSlice.encode({ rawStats: slice.rawStats }).finish());
  return assemble([{ field: 2, parts }]);
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
