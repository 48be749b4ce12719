import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

import type { onnx as O } from 'onnx-proto';

import { onnx } from './proto.js';

/** An initializer whose bytes are streamed to disk as-is (never copied through protobufjs). */
export interface RawInitializer {
  readonly name: string;
  readonly dataType: number;
  readonly dims: readonly number[];
  /** Little-endian element bytes. */
  readonly data: Uint8Array;
}

/** Everything of a model except its initializers' bytes. */
export interface ModelParts {
  readonly model: O.IModelProto;
  readonly graph: O.IGraphProto;
  readonly initializers: readonly RawInitializer[];
}

// Protobuf field numbers (onnx.proto): ModelProto.graph = 7, GraphProto.initializer = 5,
// TensorProto.raw_data = 9. All are length-delimited (wire type 2).
const MODEL_GRAPH_TAG = (7 << 3) | 2;
const GRAPH_INITIALIZER_TAG = (5 << 3) | 2;
const TENSOR_RAW_DATA_TAG = (9 << 3) | 2;

function varint(n: number): Uint8Array {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Uint8Array.from(out);
}

function concatLength(chunks: readonly Uint8Array[]): number {
  let n = 0;
  for (const c of chunks) n += c.byteLength;
  return n;
}

/**
 * Serialises a model to protobuf chunks. Initializer payloads are referenced, not copied, so a
 * ~1 GB backbone needs no second copy of its weights in memory. Protobuf lets a message's fields
 * come in any order, so the graph's small fields are encoded by protobufjs and the initializers
 * are appended after them, each as a TensorProto header followed by its raw_data field.
 */
export function modelChunks(parts: ModelParts): Uint8Array[] {
  const graphChunks: Uint8Array[] = [onnx.GraphProto.encode({ ...parts.graph, initializer: [] }).finish()];
  for (const init of parts.initializers) {
    const head = onnx.TensorProto.encode({
      name: init.name,
      dataType: init.dataType,
      dims: [...init.dims],
    }).finish();
    const rawLen = varint(init.data.byteLength);
    const tensorLen = head.byteLength + 1 + rawLen.byteLength + init.data.byteLength;
    graphChunks.push(
      Uint8Array.of(GRAPH_INITIALIZER_TAG),
      varint(tensorLen),
      head,
      Uint8Array.of(TENSOR_RAW_DATA_TAG),
      rawLen,
      init.data,
    );
  }
  const modelHead = onnx.ModelProto.encode({ ...parts.model, graph: null }).finish();
  return [modelHead, Uint8Array.of(MODEL_GRAPH_TAG), varint(concatLength(graphChunks)), ...graphChunks];
}

/** Hard protobuf limit: ONNX Runtime refuses single-file models at or above 2 GiB. */
export const MAX_ONNX_BYTES = 2 ** 31 - 1;

/** Writes the model to `path` chunk by chunk and returns its size and sha256 (hex). */
export async function writeModel(
  path: string,
  parts: ModelParts,
): Promise<{ bytes: number; sha256: string }> {
  const chunks = modelChunks(parts);
  const total = concatLength(chunks);
  if (total > MAX_ONNX_BYTES) {
    throw new RangeError(`model is ${total} bytes; a single-file ONNX model must stay below 2 GiB`);
  }
  const hash = createHash('sha256');
  const fh = await open(path, 'w');
  try {
    for (const c of chunks) {
      hash.update(c);
      let off = 0;
      while (off < c.byteLength) {
        const { bytesWritten } = await fh.write(c, off, c.byteLength - off);
        off += bytesWritten;
      }
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { bytes: total, sha256: hash.digest('hex') };
}

/** Encodes the model into one buffer (small models, tests). */
export function encodeModel(parts: ModelParts): Uint8Array {
  return Buffer.concat(modelChunks(parts));
}
