import { CuriaError } from '@curia/errors';
import { fileChunks } from '@curia/kit';
import { common, type register } from '@curia/proto';
import {
  displacementOnGrid,
  inverseDisplacementOnGrid,
  voxelCount,
  warpImage,
  warpLabels,
  writeDisplacementNifti,
  writeImageNifti,
  type Grid,
  type GridField,
  type LabelField,
  type Mat4,
} from '@curia/register';
import { float32ToFloat16 } from '@curia/tensors';
import { gzipNiftiAsync } from '@curia/volume';

type Response = register.RegisterResponse;

/** Bytes of one slab message's tensor (messages stay around 1–4 MiB, as the contract says). */
export const SLAB_TARGET_BYTES = 2 * 1024 * 1024;

/** The transform T(x) = A·(x + v(x)) of a registration, as the outputs need it. */
export interface FinalTransform {
  readonly affine: Mat4;
  readonly displacement?: GridField | undefined;
  /** v's inverse on the working grid, when the inverse field is returned. */
  readonly inverse?: GridField | undefined;
}

/** Fixed voxels i0 ≤ i < i1 of a grid as a grid of their own (a slab along axis i). */
export function iSlab(g: Grid, i0: number, i1: number): Grid {
  const a = [...g.affine];
  a[3] = a[3]! + a[0]! * i0;
  a[7] = a[7]! + a[4]! * i0;
  a[11] = a[11]! + a[8]! * i0;
  return { dims: [i1 - i0, g.dims[1], g.dims[2]], affine: a };
}

/** Slabs [i0, i1) along axis i whose tensors hold about {@link SLAB_TARGET_BYTES}. */
export function* slabRanges(g: Grid, bytesPerVoxel: number): Generator<[number, number]> {
  const perI = g.dims[1] * g.dims[2] * bytesPerVoxel;
  const n = Math.max(1, Math.floor(SLAB_TARGET_BYTES / perI));
  for (let i0 = 0; i0 < g.dims[0]; i0 += n) yield [i0, Math.min(g.dims[0], i0 + n)];
}

/** `A` in the requested frame: LPS as computed, RAS = F·A·F with F = diag(−1, −1, 1). */
export function affineInFrame(a: Mat4, frame: 'LPS' | 'RAS'): number[] {
  if (frame === 'LPS') return [...a];
  const s = [-1, -1, 1, 1];
  return a.map((v, i) => v * s[Math.floor(i / 4)]! * s[i % 4]!);
}

/**
 * A slab field (NIfTI order, channel-major) as the contract's C-order tensor (n, Y, Z[, C]): element
 * ((i·Y + j)·Z + k)·C + c. Vectors in RAS have x and y negated.
 */
function cOrder(f: GridField | LabelField, frame: 'LPS' | 'RAS'): Float32Array | Uint8Array | Uint16Array {
  const [n, ny, nz] = f.grid.dims;
  const count = voxelCount(f.grid);
  const channels = 'channels' in f ? f.channels : 1;
  const out = new (f.data.constructor as Float32ArrayConstructor)(count * channels);
  const sign = channels === 3 && frame === 'RAS' ? [-1, -1, 1] : [1, 1, 1];
  for (let c = 0; c < channels; c++) {
    const s = sign[c] ?? 1;
    for (let k = 0; k < nz; k++)
      for (let j = 0; j < ny; j++) {
        const src = c * count + n * (j + ny * k);
        for (let i = 0; i < n; i++) out[((i * ny + j) * nz + k) * channels + c] = s * f.data[src + i]!;
      }
  }
  return out;
}

function tensorOf(
  values: Float32Array | Uint8Array | Uint16Array,
  shape: number[],
  dtype: 'F32' | 'F16' | 'native',
): common.Tensor {
  if (values instanceof Float32Array) {
    if (dtype === 'F16') {
      const h = float32ToFloat16(values);
      return { dtype: common.DType.F16, shape, data: new Uint8Array(h.buffer, h.byteOffset, h.byteLength) };
    }
    return {
      dtype: common.DType.F32,
      shape,
      data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
    };
  }
  return {
    dtype: values instanceof Uint16Array ? common.DType.U16 : common.DType.U8,
    shape,
    data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  };
}

/** The total displacement u (or its inverse) on the fixed grid, slab by slab, as response messages. */
export function* displacementSlabs(
  fixed: Grid,
  t: FinalTransform,
  o: { readonly inverse: boolean; readonly frame: 'LPS' | 'RAS'; readonly dtype: 'F32' | 'F16' },
): Generator<Response> {
  for (const [i0, i1] of slabRanges(fixed, o.dtype === 'F16' ? 6 : 12)) {
    const g = iSlab(fixed, i0, i1);
    const u = o.inverse
      ? inverseDisplacementOnGrid(g, t.affine, t.displacement, { inverse: t.inverse })
      : displacementOnGrid(g, t.affine, t.displacement);
    const slab: register.FixedGridSlab = {
      iStart: i0,
      tensor: tensorOf(cOrder(u, o.frame), [i1 - i0, g.dims[1], g.dims[2], 3], o.dtype),
    };
    yield o.inverse
      ? { msg: { $case: 'inverseDisplacement', value: { slab } } }
      : { msg: { $case: 'displacement', value: { slab } } };
  }
}

/** The total displacement u (or its inverse) on the fixed grid as a NIfTI vector image, in chunks. */
export async function* displacementNifti(
  fixed: Grid,
  t: FinalTransform,
  inverse: boolean,
): AsyncGenerator<Response> {
  const u = inverse
    ? inverseDisplacementOnGrid(fixed, t.affine, t.displacement, { inverse: t.inverse })
    : displacementOnGrid(fixed, t.affine, t.displacement);
  // Compressed off the event loop: a whole-grid F32 vector field can take seconds to gzip.
  const bytes = await gzipNiftiAsync(writeDisplacementNifti(u, { gzip: false }));
  yield* inverse
    ? fileChunks(bytes, 'inverse_displacement.nii.gz', (c): Response => ({
        msg: { $case: 'inverseDisplacementNiftiChunk', value: c },
      }))
    : fileChunks(bytes, 'displacement.nii.gz', (c): Response => ({
        msg: { $case: 'displacementNiftiChunk', value: c },
      }));
}

/** A moving image or label map warped onto the fixed grid, as NIfTI chunks or C-order slabs. */
export async function* warpedOutput(
  inputId: string,
  moving: GridField | LabelField,
  fixed: Grid,
  t: FinalTransform,
  format: 'nifti' | 'slabs',
): AsyncGenerator<Response> {
  const warp = (g: Grid): GridField | LabelField =>
    'channels' in moving
      ? warpImage(moving, g, t.affine, t.displacement)
      : warpLabels(moving, g, t.affine, t.displacement);
  const message = (payload: register.WarpedOutput['payload']): Response => ({
    msg: { $case: 'warped', value: { inputId, payload } },
  });
  if (format === 'nifti') {
    yield* warpedNifti(inputId, warp(fixed));
    return;
  }
  const bytesPerVoxel = moving.data.BYTES_PER_ELEMENT;
  for (const [i0, i1] of slabRanges(fixed, bytesPerVoxel)) {
    const g = iSlab(fixed, i0, i1);
    const tensor = tensorOf(cOrder(warp(g), 'LPS'), [i1 - i0, g.dims[1], g.dims[2]], 'native');
    yield message({ $case: 'slab', value: { iStart: i0, tensor } });
  }
}

/** A warped image or label map already on the whole fixed grid, as `<inputId>.nii.gz` chunks. */
export async function* warpedNifti(
  inputId: string,
  warped: GridField | LabelField,
): AsyncGenerator<Response> {
  const bytes = await gzipNiftiAsync(writeImageNifti(warped, { gzip: false }));
  yield* fileChunks(bytes, `${inputId}.nii.gz`, (c) => ({
    msg: { $case: 'warped', value: { inputId, payload: { $case: 'niftiChunk', value: c } } },
  }));
}

/** Bytes a whole-grid output of `bytesPerVoxel` needs at once (NIfTI outputs are built whole). */
export function wholeGridBytes(fixed: Grid, bytesPerVoxel: number): number {
  return voxelCount(fixed) * bytesPerVoxel;
}

/** Refuses an output too large to build at once, naming the setting and the streaming alternative. */
export function checkWholeGrid(fixed: Grid, bytesPerVoxel: number, limit: number, what: string): void {
  const bytes = wholeGridBytes(fixed, bytesPerVoxel);
  if (bytes > limit) {
    throw new CuriaError(
      'RESOURCE_EXHAUSTED',
      `${what} on the ${fixed.dims.join('x')} fixed grid needs ${Math.ceil(bytes / 2 ** 20)} MiB at once, above CURIA_REGISTER_MAX_OUTPUT_BYTES (${Math.floor(limit / 2 ** 20)} MiB); ask for slabs instead`,
    );
  }
}
