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
