/**
 * `@curia/volume`: NIfTI and DICOM volume reading, canonical (LPS, axial) geometry and the exact
 * Curia slice preprocessing, streamed one slice at a time.
 */
export { openVolume } from './volume.js';
export type { CanonicalPlane, OpenVolumeOptions, Volume, VolumeInfo, VolumeSource } from './volume.js';
export { DEFAULT_VOLUME_LIMITS, preprocessHeldBytes } from './io/limits.js';
export type { AdmitVolume, VolumeAdmission, VolumeLimits } from './io/limits.js';
export type { VoxelType } from './io/voxel-array.js';
export {
  openAllowedRef,
  refNotReadable,
  type AllowedRef,
  type OpenAllowedRefOptions,
  type Refuse,
} from './io/allowed-uri.js';
export { sliceWalk } from './io/slice-gather.js';
export type { SliceWalk } from './io/slice-gather.js';
export { dice, hd95, percentile, squaredDistanceTo, surfaceOf } from './labels/overlap.js';
export { TOTALSEGMENTATOR_ORGANS } from './labels/totalsegmentator.js';
export { canonicalToInputIndex, computeGeometry } from './geometry/geometry.js';
export type { AxisMapping, Geometry } from './geometry/geometry.js';
export { axcodesOf } from './geometry/axcodes.js';
export { gridTaps, nearestSourceIndices } from './geometry/model-grid.js';
export type { GridKernel, GridTaps } from './geometry/model-grid.js';
export { columnNorm, flipWorldXY, gridCornerDistanceMm, mat4Multiply } from './geometry/affine.js';
export type { Mat4 } from './geometry/affine.js';
export {
  bundlePreprocessSpec,
  CURIA_DEFAULT_PREPROCESS_SPEC,
  validatePreprocessSpec,
} from './preprocess/spec.js';
export type { BundlePreprocess, PreprocessSpec } from './preprocess/spec.js';
export { resolveSelection } from './preprocess/selection.js';
export type { SliceSelection } from './preprocess/selection.js';
export {
  MAX_SELECTION_INDICES,
  MAX_SELECTION_PARTS,
  selectionFromWire,
} from './preprocess/selection-wire.js';
export type { WireSliceSelection } from './preprocess/selection-wire.js';
export { axisWeights, computeAxisWeights, resizeBicubicAa, ResizeScratch } from './preprocess/resize.js';
export type { AxisWeights } from './preprocess/resize.js';
export {
  preprocessSlices,
  preprocessSlicesOnPool,
  preprocessToTensor,
  writePreprocessed,
} from './preprocess/preprocess.js';
export { defaultSliceThreads, SlicePool } from './preprocess/slice-pool.js';
export type { PooledSlice } from './preprocess/slice-pool.js';
export type { SliceDType, SliceInput, SliceOutput } from './preprocess/slice-pool-protocol.js';
export { processSlice, SliceScratch } from './preprocess/slice-kernel.js';
export type { ProcessedSlice } from './preprocess/slice-kernel.js';
export type {
  PreprocessedSlice,
  PreprocessedTensor,
  PreprocessOptions,
  PreprocessToTensorOptions,
  PooledPreprocessOptions,
  PooledPreprocessedSlice,
  RawSliceStats,
  SliceLayout,
} from './preprocess/preprocess.js';
export type { SliceStats } from './preprocess/normalize.js';
export { transferSyntaxName } from './dicom/transfer-syntax.js';
export { affineToQuaternion, gzipNiftiAsync, int16Bytes, writeNifti } from './nifti/nifti-writer.js';
export type { NiftiWriteOptions } from './nifti/nifti-writer.js';
