import { common, preprocess } from '@curia/proto';

/** Bytes of `v` as a protobuf varint (v < 2^32). */
function varintSize(v: number): number {
  let n = 1;
  while (v > 0x7f) {
    v >>>= 7;
    n++;
  }
  return n;
}

function writeVarint(buf: Uint8Array, pos: number, v: number): number {
  while (v > 0x7f) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

// Tags (field << 3 | wire type 2) of the length-delimited fields assembled by hand.
const TAG_RESPONSE_SLICE = 18; // PreprocessResponse.slice = 2
const TAG_SLICE_PIXELS = 18; // PreprocessedSlice.pixels = 2
const TAG_TENSOR_DATA = 26; // Tensor.data = 3

/**
 * Encodes a `slice` response with one allocation and one copy of the pixel bytes. The generic
 * writer grows its buffer by doubling, shifts the ~1 MiB payload once per nesting level to widen
 * length prefixes, then copies the result out: about six copies and several large allocations
 * per slice on the event loop. The small fields are still encoded by the generated code, and the
 * pieces are laid out exactly as it lays them out (fields in number order; `data` is the
 * Tensor's last field), so the bytes are identical.
 */
export function encodeSliceResponse(slice: preprocess.PreprocessedSlice): Uint8Array {
  const { PreprocessedSlice } = preprocess;
  const pixels = slice.pixels;
  if (!pixels || pixels.data.length === 0) {
    return preprocess.PreprocessResponse.encode({ msg: { $case: 'slice', value: slice } }).finish();
  }
  const head = slice.mapping ? PreprocessedSlice.encode({ mapping: slice.mapping }).finish() : null;
  const tail = slice.rawStats ? PreprocessedSlice.encode({ rawStats: slice.rawStats }).finish() : null;
  const tensorHead = common.Tensor.encode({ ...pixels, data: new Uint8Array(0) }).finish();
  const data = pixels.data;
  const tensorLen = tensorHead.length + 1 + varintSize(data.length) + data.length;
  const sliceLen = (head?.length ?? 0) + 1 + varintSize(tensorLen) + tensorLen + (tail?.length ?? 0);
  const out = Buffer.allocUnsafe(1 + varintSize(sliceLen) + sliceLen);
  let pos = 0;
  out[pos++] = TAG_RESPONSE_SLICE;
  pos = writeVarint(out, pos, sliceLen);
  if (head) {
    out.set(head, pos);
    pos += head.length;
  }
  out[pos++] = TAG_SLICE_PIXELS;
  pos = writeVarint(out, pos, tensorLen);
  out.set(tensorHead, pos);
  pos += tensorHead.length;
  out[pos++] = TAG_TENSOR_DATA;
  pos = writeVarint(out, pos, data.length);
  out.set(data, pos);
  pos += data.length;
  if (tail) out.set(tail, pos);
  return out;
}

/** PreprocessResponse's encoder with the slice fast path; other messages use the generated code. */
function encodeResponse(message: preprocess.PreprocessResponse): { finish(): Uint8Array } {
  if (message.msg?.$case === 'slice') {
    const bytes = encodeSliceResponse(message.msg.value);
    return { finish: () => bytes };
  }
  return preprocess.PreprocessResponse.encode(message);
}

/**
 * PreprocessService's definition for the server side: identical to the generated one (same
 * methods, paths, messages and bytes on the wire) except that responses are serialised with
 * {@link encodeSliceResponse}.
 */
export const preprocessServerDefinition = {
  ...preprocess.PreprocessServiceDefinition,
  methods: {
    ...preprocess.PreprocessServiceDefinition.methods,
    preprocess: {
      ...preprocess.PreprocessServiceDefinition.methods.preprocess,
      responseType: { ...preprocess.PreprocessResponse, encode: encodeResponse },
    },
  },
} as const;
