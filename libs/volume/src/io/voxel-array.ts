/** A typed array holding stored (unscaled) voxel values in native byte order. */
export type VoxelArray =
  Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

/** Element types a volume's stored voxels can have. */
export type VoxelType = 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';

/** Bytes per element of each voxel type. */
export const VOXEL_TYPE_BYTES: Readonly<Record<VoxelType, number>> = {
  int8: 1,
  uint8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  float32: 4,
  float64: 8,
};

const hostLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** True when {@link viewVoxels} copies bytes at `byteOffset` rather than viewing them. */
export function viewCopies(
  byteOffset: number,
  type: VoxelType,
  littleEndian: boolean,
  owned: boolean,
): boolean {
  const size = VOXEL_TYPE_BYTES[type];
  return byteOffset % size !== 0 || (size > 1 && littleEndian !== hostLittleEndian && !owned);
}

/**
 * Views `bytes` as a typed array of `type`. Copies only when the bytes are misaligned, big-endian
 * (they are then byte-swapped in the copy) or when `owned` is false and a swap is needed; an owned
 * buffer is swapped in place.
 */
export function viewVoxels(
  bytes: Uint8Array,
  type: VoxelType,
  littleEndian: boolean,
  owned: boolean,
): VoxelArray {
  const size = VOXEL_TYPE_BYTES[type];
  const needSwap = size > 1 && littleEndian !== hostLittleEndian;
  let src = bytes;
  if (viewCopies(bytes.byteOffset, type, littleEndian, owned)) {
    src = new Uint8Array(bytes.byteLength);
    src.set(bytes);
  }
  if (needSwap) swapBytesInPlace(src, size);
  const n = src.byteLength / size;
  const buf = src.buffer;
  const off = src.byteOffset;
  switch (type) {
    case 'int8':
      return new Int8Array(buf, off, n);
    case 'uint8':
      return new Uint8Array(buf, off, n);
    case 'int16':
      return new Int16Array(buf, off, n);
    case 'uint16':
      return new Uint16Array(buf, off, n);
    case 'int32':
      return new Int32Array(buf, off, n);
    case 'uint32':
      return new Uint32Array(buf, off, n);
    case 'float32':
      return new Float32Array(buf, off, n);
    case 'float64':
      return new Float64Array(buf, off, n);
  }
}

function swapBytesInPlace(b: Uint8Array, size: number): void {
  if (size === 2) {
    for (let i = 0; i + 1 < b.length; i += 2) {
      const t = b[i]!;
      b[i] = b[i + 1]!;
      b[i + 1] = t;
    }
    return;
  }
  for (let i = 0; i + size <= b.length; i += size) {
    for (let lo = i, hi = i + size - 1; lo < hi; lo++, hi--) {
      const t = b[lo]!;
      b[lo] = b[hi]!;
      b[hi] = t;
    }
  }
}

/** Number of NaN/±Inf elements (always 0 for integer arrays). */
export function countNonFinite(values: VoxelArray): number {
  if (!(values instanceof Float32Array || values instanceof Float64Array)) return 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    // v - v is NaN exactly for NaN and ±Inf.
    if (v - v !== 0) n++;
  }
  return n;
}

/**
 * A copy of `a` that owns its whole buffer, so it can be transferred to a thread without
 * detaching anything else. A Node Buffer becomes a plain Uint8Array: `Buffer#slice` is a view.
 */
export function ownedCopy<T extends VoxelArray | Float64Array>(a: T): T {
  return (Buffer.isBuffer(a) ? new Uint8Array(a) : a.slice()) as T;
}
