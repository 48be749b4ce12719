import { common } from '@curia/proto';
import { isDType, toFloat32, type RawTensor } from '@curia/tensors';

/**
 * A wire tensor as a {@link RawTensor} (the enum names are the safetensors dtype names). The data
 * is copied when it is not 8-byte aligned, since decoded messages hold views into larger buffers.
 */
export function rawTensorOf(t: common.Tensor): RawTensor {
  const name = common.DType[t.dtype];
  if (!name || !isDType(name))
    throw new Error(`tensor dtype ${common.dTypeToJSON(t.dtype)} is not a concrete dtype`);
  const data = t.data.byteOffset % 8 === 0 ? t.data : new Uint8Array(t.data);
  return { dtype: name, shape: [...t.shape], data };
}

/** A RawTensor as a wire tensor (shares the data). */
export function wireTensorOf(t: RawTensor): common.Tensor {
  return { dtype: common.DType[t.dtype], shape: [...t.shape], data: t.data };
}

/** The values of a floating wire tensor (F32, F16, BF16, F64) as float32. */
export function wireFloats(t: common.Tensor): Float32Array {
  return toFloat32(rawTensorOf(t));
}
