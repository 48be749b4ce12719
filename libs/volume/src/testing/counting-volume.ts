import type { Volume } from '../volume.js';

/** Wraps a volume and counts its slice reads (to check that cancelled work stops reading). */
export function countingVolume(v: Volume): { volume: Volume; reads: () => number } {
  let reads = 0;
  const volume: Volume = {
    geometry: v.geometry,
    voxelType: v.voxelType,
    info: v.info,
    sliceCount: v.sliceCount,
    readCanonicalSlice: (k, out) => {
      reads++;
      return v.readCanonicalSlice(k, out);
    },
    ...(v.readCanonicalPlane
      ? {
          readCanonicalPlane: (k: number, out?: Parameters<NonNullable<Volume['readCanonicalPlane']>>[1]) => {
            reads++;
            return v.readCanonicalPlane!(k, out);
          },
        }
      : {}),
  };
  return { volume, reads: () => reads };
}
