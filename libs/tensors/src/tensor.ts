import { DTYPE_BYTES, numel, type DType } from './dtype.js';
import { float16ToFloat32, float32ToFloat16 } from './float16.js';

/** A dense, row-major tensor: raw little-endian bytes plus dtype and shape. */
export interface RawTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Little-endian element bytes, exactly numel(shape) × DTYPE_BYTES[dtype] long. */
  readonly data: Uint8Array;
}

/** Error raised when bytes, dtype and shape disagree. */
export class TensorFormatError extends Error {
  override name = 'TensorFormatError';
}

/** Checks that a raw tensor's byte length matches its dtype and shape. */
export function validateRawTensor(t: RawTensor, what = 'tensor'): void {
  const expected = numel(t.shape) * DTYPE_BYTES[t.dtype];
  if (t.data.byteLength !== expected) {
    throw new TensorFormatError(
      `${what}: ${t.data.byteLength} bytes do not match dtype ${t.dtype} and shape [${t.shape.join(', ')}] (expected ${expected})`,
    );
  }
}

function aligned(data: Uint8Array, bytes: number): ArrayBuffer | null {
  return data.byteOffset % bytes === 0 ? (data.buffer as ArrayBuffer) : null;
}

/**
 * Views (or copies, when misaligned) a raw F32 or F16 tensor as Float32Array.
 * Other dtypes are converted element by element.
 */
export function toFloat32(t: RawTensor): Float32Array {
  validateRawTensor(t);
  const n = t.data.byteLength / DTYPE_BYTES[t.dtype];
  const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  switch (t.dtype) {
    case 'F32': {
      const buf = aligned(t.data, 4);
      return buf
        ? new Float32Array(buf, t.data.byteOffset, n)
        : new Float32Array(new Uint8Array(t.data).buffer);
    }
    case 'F16': {
      const buf = aligned(t.data, 2);
      const bits = buf
        ? new Uint16Array(buf, t.data.byteOffset, n)
        : new Uint16Array(new Uint8Array(t.data).buffer);
      return float16ToFloat32(bits);
    }
    default: {
      const out = new Float32Array(n);
      const get = elementReader(t.dtype, dv);
      for (let i = 0; i < n; i++) out[i] = get(i);
      return out;
    }
  }
}

function elementReader(dtype: DType, dv: DataView): (i: number) => number {
  switch (dtype) {
    case 'F64':
      return (i) => dv.getFloat64(i * 8, true);
    case 'F32':
      return (i) => dv.getFloat32(i * 4, true);
    case 'I64':
      return (i) => Number(dv.getBigInt64(i * 8, true));
    case 'I32':
      return (i) => dv.getInt32(i * 4, true);
    case 'I16':
      return (i) => dv.getInt16(i * 2, true);
    case 'I8':
      return (i) => dv.getInt8(i);
    case 'U32':
      return (i) => dv.getUint32(i * 4, true);
    case 'U16':
      return (i) => dv.getUint16(i * 2, true);
    case 'U8':
    case 'BOOL':
      return (i) => dv.getUint8(i);
    case 'BF16':
      // bfloat16 is the upper half of a float32.
      return (i) => {
        const u = new Uint32Array([dv.getUint16(i * 2, true) << 16]);
        return new Float32Array(u.buffer)[0]!;
      };
    case 'F16':
      throw new TensorFormatError('F16 is converted in bulk');
  }
}

/** Wraps a Float32Array as a raw tensor in F32 (zero-copy) or F16. */
export function fromFloat32(
  values: Float32Array,
  shape: readonly number[],
  dtype: 'F32' | 'F16' = 'F32',
): RawTensor {
  if (numel(shape) !== values.length) {
    throw new TensorFormatError(`${values.length} values do not fill shape [${shape.join(', ')}]`);
  }
  if (dtype === 'F16') {
    const bits = float32ToFloat16(values);
    return { dtype, shape: [...shape], data: new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength) };
  }
  return {
    dtype,
    shape: [...shape],
    data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  };
}

/** Index of the first non-finite value, or -1 when all values are finite. */
export function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return i;
  return -1;
}
