import { CuriaError } from '@curia/errors';
import { common } from '@curia/proto';
import { DTYPE_BYTES, isDType, toFloat32, type DType, type RawTensor } from '@curia/tensors';

/** The floating dtypes a feature or head input may carry. */
export const FLOAT_DTYPES: readonly DType[] = ['F32', 'F16', 'BF16'];

/** What {@link decodeWireTensor} accepts and guarantees. */
export interface WireTensorRules {
  /** Accepted dtypes (default: any concrete dtype). */
  readonly dtypes?: readonly DType[];
  /** Exact shape required (default: any shape whose element count matches the bytes). */
  readonly shape?: readonly number[];
  /**
   * Return data the caller owns (a copy), so it may outlive the message: decoded messages hold
   * views into grpc-js's receive buffers. Without it, data is copied only when misaligned.
   */
  readonly own?: boolean;
}

const invalid = (msg: string): CuriaError => new CuriaError('INVALID_ARGUMENT', msg);

/**
 * Validates a wire tensor and returns it as a {@link RawTensor} whose data is aligned to its
 * element size: the dtype is concrete and accepted, every dimension a non-negative integer (and
 * equal to `rules.shape` when given), and the byte length exactly what dtype and shape need.
 * INVALID_ARGUMENT names `field`; values are never echoed.
 */
export function decodeWireTensor(
  t: common.Tensor | undefined,
  field: string,
  rules: WireTensorRules = {},
): RawTensor {
  if (!t) throw invalid(`${field} is missing`);
  const name = common.DType[t.dtype];
  const dtype = name && isDType(name) ? name : undefined;
  if (!dtype || (rules.dtypes && !rules.dtypes.includes(dtype))) {
    const want = (rules.dtypes ?? []).map((d) => `D_TYPE_${d}`);
    throw invalid(
      `${field}.dtype must be ${want.length ? want.join(' or ') : 'a concrete dtype'} (got ${common.dTypeToJSON(t.dtype)})`,
    );
  }
  const shape = t.shape;
  if (rules.shape && (shape.length !== rules.shape.length || shape.some((d, i) => d !== rules.shape![i]))) {
    throw invalid(`${field}.shape must be [${rules.shape.join(', ')}] (got [${shape.join(', ')}])`);
  }
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw invalid(`${field}.shape has an invalid dimension ${d}`);
    n *= d;
  }
  const need = n * DTYPE_BYTES[dtype];
  if (t.data.byteLength !== need) {
    throw invalid(
      `${field}.data has ${t.data.byteLength} bytes; dtype ${dtype} and shape [${shape.join(', ')}] need ${need}`,
    );
  }
  // `new Uint8Array(view)` copies into a fresh (aligned) buffer; Buffer#slice would not copy.
  const copy = rules.own || t.data.byteOffset % DTYPE_BYTES[dtype] !== 0;
  return { dtype, shape: [...shape], data: copy ? new Uint8Array(t.data) : t.data };
}

/** Options of {@link wireFloats}. */
export interface WireFloatRules extends WireTensorRules {
  /** Reject NaN and ±Inf (INVALID_ARGUMENT naming the field and the element). */
  readonly finite?: boolean;
}

/**
 * The values of a floating wire tensor (F32, F16, BF16, F64 by default) as float32, validated by
 * {@link decodeWireTensor}. F32 data is a view of the message unless `own` is set.
 */
export function wireFloats(
  t: common.Tensor | undefined,
  field = 'tensor',
  rules: WireFloatRules = {},
): Float32Array {
  const raw = decodeWireTensor(t, field, { dtypes: [...FLOAT_DTYPES, 'F64'], ...rules });
  const values = toFloat32(raw);
  if (rules.finite) {
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i]!)) throw invalid(`${field} contains NaN or Inf (element ${i})`);
    }
  }
  return values;
}

/** A RawTensor as a wire tensor (shares the data). */
export function wireTensorOf(t: RawTensor): common.Tensor {
  return { dtype: common.DType[t.dtype], shape: [...t.shape], data: t.data };
}
