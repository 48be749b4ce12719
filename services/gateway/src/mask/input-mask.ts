import { CuriaError, isCuriaError } from '@curia/errors';
import { common } from '@curia/proto';
import {
  gridCornerDistanceMm,
  openVolume,
  type Geometry,
  type Volume,
  type VolumeAdmission,
} from '@curia/volume';

/** A region of interest on the input grid, decoded once per study. */
export interface InputGridMask {
  /** Input grid dims (i, j, k). */
  readonly dims: readonly [number, number, number];
  /** One byte per input voxel in C order over (i, j, k) (k fastest); nonzero = inside. */
  readonly voxels: Uint8Array;
  /** Voxels inside the mask. */
  readonly inside: number;
  /** The request field that declared the dims (named in errors). */
  readonly dimsField: string;
  /** Voxel-to-world affine of a NIfTI mask (checked against the study's input grid); absent for rle/dense. */
  readonly affine?: { readonly m: readonly number[]; readonly frame: 'RAS' | 'LPS' } | undefined;
  /** Gives back the memory budget the grid holds (idempotent); call when the study ends. */
  readonly release?: () => void;
}

/** Limits of {@link decodeInputMask}. */
export interface MaskLimits {
  /** Most input voxels a mask may cover (it takes one byte per voxel in the gateway). */
  readonly maxVoxels: number;
  /**
   * Takes bytes from the process's memory budget before they are allocated (waits, or throws
   * RESOURCE_EXHAUSTED); the returned function gives them back. None: no budget.
   */
  readonly reserve?: (bytes: number, what: string) => Promise<() => void>;
}

const noop = (): void => undefined;

const cancelled = (): CuriaError => new CuriaError('CANCELLED', 'the study was cancelled');

function gridDims(dims: readonly number[], field: string, limits: MaskLimits): [number, number, number] {
  if (dims.length !== 3 || dims.some((d) => !Number.isSafeInteger(d) || d < 1)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${field} must be the 3 input grid dims (i, j, k), each >= 1; got [${dims.join(', ')}]`,
    );
  }
  const n = dims[0]! * dims[1]! * dims[2]!;
  if (n > limits.maxVoxels) {
    throw new CuriaError(
      'RESOURCE_EXHAUSTED',
      `${field} [${dims.join(', ')}] covers ${n} voxels, above the mask limit of ${limits.maxVoxels} (CURIA_GATEWAY_MAX_MASK_VOXELS)`,
    );
  }
  return [dims[0]!, dims[1]!, dims[2]!];
}

async function decodeRle(rle: common.RunLengthMask, limits: MaskLimits): Promise<InputGridMask> {
  const dims = gridDims(rle.dims, 'start.mask.rle.dims', limits);
  const total = dims[0] * dims[1] * dims[2];
  // Check the sum before allocating: a wrong count must not cost a volume-sized buffer.
  let sum = 0;
  for (const c of rle.counts) sum += c;
  if (sum !== total) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `start.mask.rle.counts sum to ${sum}, but start.mask.rle.dims [${dims.join(', ')}] hold ${total} voxels`,
    );
  }
  const release = (await limits.reserve?.(total, `start.mask.rle grid ${dims.join('x')}`)) ?? noop;
  const voxels = new Uint8Array(total);
  let at = 0;
  let inside = 0;
  rle.counts.forEach((c, i) => {
    if (i % 2 === 1) {
      voxels.fill(1, at, at + c);
      inside += c;
    }
    at += c;
  });
  return { dims, voxels, inside, dimsField: 'start.mask.rle.dims', release };
}

function decodeDense(t: common.Tensor, limits: MaskLimits): InputGridMask {
  if (t.dtype !== common.DType.U8 && t.dtype !== common.DType.BOOL) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `start.mask.dense.dtype must be U8 or BOOL, got ${common.DType[t.dtype] ?? t.dtype}`,
    );
  }
  const dims = gridDims(t.shape, 'start.mask.dense.shape', limits);
  const total = dims[0] * dims[1] * dims[2];
  if (t.data.byteLength !== total) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `start.mask.dense.data holds ${t.data.byteLength} bytes; shape [${dims.join(', ')}] needs ${total}`,
    );
  }
  let inside = 0;
  for (let i = 0; i < total; i++) {
    const v = t.data[i]!;
    if (v !== 0) inside++;
    if (v > 1 && t.dtype === common.DType.BOOL) {
      throw new CuriaError('INVALID_ARGUMENT', 'start.mask.dense.data: BOOL elements must be 0 or 1');
    }
  }
  // Decoded bytes are a view into the request message; the request is retained anyway, so no copy.
  return { dims, voxels: t.data, inside, dimsField: 'start.mask.dense.shape' };
}

/** Writes a volume's canonical slices back into a C-order (i, j, k) byte grid (nonzero -> 1). */
async function niftiToGrid(volume: Volume, signal: AbortSignal | undefined): Promise<InputGridMask> {
  const g: Geometry = volume.geometry;
  const [ni, nj, nk] = g.inputDims;
  const strides = [nj * nk, nk, 1] as const;
  const voxels = new Uint8Array(ni * nj * nk);
  const [slices, rows, cols] = g.canonicalDims;
  const { slice, row, col } = g.axes;
  const start = (a: typeof row): number => (a.flip ? g.inputDims[a.inputAxis] - 1 : 0) * strides[a.inputAxis];
  const step = (a: typeof row): number => (a.flip ? -1 : 1) * strides[a.inputAxis];
  const rowStep = step(row);
  const colStep = step(col);
  let buf: Float64Array | undefined;
  let inside = 0;
  for (let k = 0; k < slices; k++) {
    if (signal?.aborted) throw cancelled();
    buf = await volume.readCanonicalSlice(k, buf);
    const base = g.sliceInputIndex[k]! * strides[slice.inputAxis] + start(row) + start(col);
    let o = 0;
    for (let r = 0; r < rows; r++) {
      let p = base + r * rowStep;
      for (let c = 0; c < cols; c++, p += colStep) {
        if (buf[o++] !== 0) {
          voxels[p] = 1;
          inside++;
        }
      }
    }
  }
  return {
    dims: [ni, nj, nk],
    voxels,
    inside,
    dimsField: 'start.mask.nifti dims',
    affine: { m: g.inputAffine, frame: g.inputFrame },
  };
}

/**
 * Opens a NIfTI mask and converts it to the byte grid. The header is checked against
 * `limits.maxVoxels` before anything is inflated, and the budget is taken then: the voxels opening
 * holds beyond the request (inflated ones of a `.nii.gz`) and one float64 slice, given back once
 * the grid is built, and the grid, held for the study.
 */
async function decodeNifti(
  data: Uint8Array,
  limits: MaskLimits,
  signal: AbortSignal | undefined,
): Promise<InputGridMask> {
  let volume: Volume;
  let releaseDecode = noop;
  let releaseGrid = noop;
  const admit = async (v: VolumeAdmission): Promise<void> => {
    gridDims(v.dims, 'start.mask.nifti dims', limits);
    if (!limits.reserve) return;
    const [a, b, c] = [...v.dims].sort((x, y) => y - x) as [number, number, number];
    const what = `start.mask.nifti ${v.dims.join('x')} ${v.voxelType}`;
    releaseDecode = await limits.reserve(v.heldBytes + a * b * 8, what);
    try {
      releaseGrid = await limits.reserve(a * b * c, `${what} grid`);
    } catch (e) {
      releaseDecode();
      throw e;
    }
  };
  try {
    volume = await openVolume(
      { kind: 'bytes', data, filename: 'mask.nii' },
      { limits: { maxVoxelBytes: 8 * limits.maxVoxels }, signal, admit },
    );
  } catch (e) {
    releaseDecode();
    releaseGrid();
    if (isCuriaError(e) && e.code === 'RESOURCE_EXHAUSTED' && e.message.startsWith('start.mask')) throw e;
    if (isCuriaError(e) && e.code !== 'INTERNAL' && e.code !== 'CANCELLED') {
      throw new CuriaError(
        e.code === 'RESOURCE_EXHAUSTED' ? 'RESOURCE_EXHAUSTED' : 'INVALID_ARGUMENT',
        `start.mask.nifti: ${e.message}`,
      );
    }
    throw e;
  }
  try {
    if (volume.info.format !== 'nifti') {
      throw new CuriaError('INVALID_ARGUMENT', 'start.mask.nifti must hold a NIfTI file');
    }
    gridDims(volume.geometry.inputDims, 'start.mask.nifti dims', limits);
    return { ...(await niftiToGrid(volume, signal)), release: releaseGrid };
  } catch (e) {
    releaseGrid();
    throw e;
  } finally {
    releaseDecode();
  }
}

/**
 * Decodes `start.mask` (rle, dense or NIfTI) into one byte per input voxel, validating it
 * (INVALID_ARGUMENT naming the field, RESOURCE_EXHAUSTED beyond `limits.maxVoxels`). The grid is
 * checked against the study's input geometry later, by {@link checkMaskGrid}, once it is known.
 */
export async function decodeInputMask(
  mask: common.InputMask,
  limits: MaskLimits,
  signal?: AbortSignal,
): Promise<InputGridMask> {
  const m = mask.mask;
  if (!m) throw new CuriaError('INVALID_ARGUMENT', 'start.mask is set but holds no rle, dense or nifti');
  switch (m.$case) {
    case 'rle':
      return decodeRle(m.value, limits);
    case 'dense':
      return decodeDense(m.value, limits);
    case 'nifti':
      return decodeNifti(m.value, limits, signal);
  }
}

/** Largest distance, in mm, allowed between the mask's and the study's voxel centres. */
export const MASK_AFFINE_TOLERANCE_MM = 1e-3;

/**
 * Checks that the mask lies on the study's input grid: same dims (i, j, k) and, for a NIfTI mask,
 * voxel centres within {@link MASK_AFFINE_TOLERANCE_MM} of the input's at every corner of the grid.
 */
export function checkMaskGrid(mask: InputGridMask, input: common.VolumeGeometry | undefined): void {
  const dims = input?.dims.slice(0, 3) ?? [];
  if (dims.length !== 3 || dims.some((d, a) => d !== mask.dims[a])) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${mask.dimsField} [${mask.dims.join(', ')}] does not match the study's input grid dims [${dims.join(', ')}]`,
    );
  }
  if (!mask.affine) return;
  const a = input?.affine;
  if (!a || a.m.length !== 16 || a.frame === common.CoordinateFrame.UNSPECIFIED) {
    throw new CuriaError('INTERNAL', 'preprocess sent an input geometry without an affine');
  }
  const studyFrame = a.frame === common.CoordinateFrame.RAS ? 'RAS' : 'LPS';
  const worst = gridCornerDistanceMm(a.m, studyFrame, mask.affine.m, mask.affine.frame, mask.dims);
  if (!(worst <= MASK_AFFINE_TOLERANCE_MM)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `start.mask.nifti is not on the study's input grid: its voxel centres are up to ${worst.toPrecision(3)} mm away (tolerance ${MASK_AFFINE_TOLERANCE_MM} mm)`,
    );
  }
}
