/**
 * Builds a NIfTI-1 single file (`n+1`, sform only, int16 voxels) in memory: enough for tests and
 * benchmarks that need volumes of a chosen size. `affine` maps voxel (i, j, k) to RAS millimetres.
 */
export function int16Nifti(
  dims: readonly [number, number, number],
  voxels: Int16Array,
  affine: readonly number[] = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
): Uint8Array {
  const [ni, nj, nk] = dims;
  if (voxels.length !== ni * nj * nk) throw new Error('voxels do not fill dims');
  const out = new Uint8Array(352 + voxels.byteLength);
  const v = new DataView(out.buffer);
  v.setInt32(0, 348, true);
  [3, ni, nj, nk, 1, 1, 1, 1].forEach((d, i) => v.setInt16(40 + 2 * i, d, true));
  v.setInt16(70, 4, true); // DT_INT16
  v.setInt16(72, 16, true);
  const zoom = (c: number): number => Math.hypot(affine[c]!, affine[4 + c]!, affine[8 + c]!);
  [1, zoom(0), zoom(1), zoom(2), 1, 1, 1, 1].forEach((p, i) => v.setFloat32(76 + 4 * i, p, true));
  v.setFloat32(108, 352, true);
  v.setFloat32(112, 1, true);
  v.setFloat32(116, 0, true);
  v.setInt16(252, 0, true); // qform_code
  v.setInt16(254, 1, true); // sform_code
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 4; c++) v.setFloat32(280 + 16 * r + 4 * c, affine[4 * r + c]!, true);
  out.set([0x6e, 0x2b, 0x31, 0], 344);
  out.set(new Uint8Array(voxels.buffer, voxels.byteOffset, voxels.byteLength), 352);
  return out;
}

/** A synthetic CT-like int16 volume: air outside an ellipse of soft tissue with a brighter core, varying per slice. */
export function syntheticCt(ni: number, nj: number, nk: number): Int16Array {
  const out = new Int16Array(ni * nj * nk);
  let o = 0;
  for (let k = 0; k < nk; k++) {
    for (let j = 0; j < nj; j++) {
      for (let i = 0; i < ni; i++) {
        const x = (i - ni / 2) / (ni * 0.4);
        const y = (j - nj / 2) / (nj * 0.3);
        const r = x * x + y * y;
        out[o++] = r > 1 ? -1000 : r < 0.1 ? 300 + ((i * 7 + j * 3 + k) % 50) : 40 + ((i + j + k) % 20);
      }
    }
  }
  return out;
}
