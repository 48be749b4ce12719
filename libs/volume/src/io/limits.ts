import type { VoxelType } from './voxel-array.js';

/**
 * What an opened volume will decode to, known from its header(s) before any large allocation:
 * passed to `OpenVolumeOptions.admit`, which may wait for memory or throw to refuse the volume.
 */
export interface VolumeAdmission {
  readonly format: 'nifti' | 'dicom';
  /** Input dims (i, j, k) as the header(s) declare them. */
  readonly dims: readonly [number, number, number];
  readonly voxelType: VoxelType;
  /** Bytes of one decoded 3D volume: dims × bytes per voxel. */
  readonly voxelBytes: number;
  /**
   * Of `voxelBytes`, what opening allocates and holds: all of them for a `.nii.gz` (inflated) or a
   * DICOM series whose canonical slices cut across frames (every frame is decoded and kept); none
   * for an uncompressed NIfTI viewed in place, or an axial DICOM series (frames are decoded one
   * slice at a time), whose bytes are the input's, which the caller already holds.
   */
  readonly heldBytes: number;
}

/** Waits for room for (or refuses) a volume before it is decoded; see {@link VolumeAdmission}. */
export type AdmitVolume = (volume: VolumeAdmission) => void | Promise<void>;

/**
 * Bytes a call preprocessing the admitted volume holds at most beyond its input: what opening
 * holds (`heldBytes`), plus for each slice in flight an input plane in the stored type and its
 * float64 gather, taken over the two largest dims (a canonical slice may lie in any input plane).
 * `slicesInFlight` is 1 on the event loop, the prefetch on a slice pool; it is capped by the
 * smallest dim (the fewest slices there can be).
 */
export function preprocessHeldBytes(v: VolumeAdmission, slicesInFlight: number): number {
  const [a, b, c] = [...v.dims].sort((x, y) => y - x) as [number, number, number];
  const perVoxel = v.voxelBytes / Math.max(1, a * b * c);
  const inFlight = Math.max(1, Math.min(slicesInFlight, c));
  return v.heldBytes + a * b * (perVoxel + 8) * inFlight;
}

/** Size limits enforced before any large allocation. */
export interface VolumeLimits {
  /** Largest voxel payload (stored bytes of the selected 3D volume) accepted. Default 2 GiB. */
  readonly maxVoxelBytes: number;
  /** Largest number of decompressed bytes read from a gzip stream. Default 4 GiB. */
  readonly maxDecompressedBytes: number;
  /** Largest number of files in a DICOM series. Default 5000. */
  readonly maxFiles: number;
}

/** Defaults for {@link VolumeLimits}. */
export const DEFAULT_VOLUME_LIMITS: VolumeLimits = {
  maxVoxelBytes: 2 * 1024 ** 3,
  maxDecompressedBytes: 4 * 1024 ** 3,
  maxFiles: 5000,
};

/** Formats a byte count for messages (exact bytes plus a MiB hint). */
export function formatBytes(n: number): string {
  return `${n} bytes (${(n / 1024 ** 2).toFixed(1)} MiB)`;
}
