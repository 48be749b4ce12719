import { voxelCount, type Grid, type GridField, type LabelField, type Mat4 } from './field.js';
import { compose, IDENTITY, invert } from './grid.js';
import { invertDisplacement, type InverseOptions } from './inverse.js';
import { forEachMappedRow, resampleLabels, resampleThroughField } from './resample.js';

/**
 * What a user gets back, on the FIXED INPUT grid (the fixed volume's own voxels, not the working grid).
 *
 * Composition rule: a registration is an affine A (FIXED → MOVING world, LPS mm) and a displacement
 * v (3 channels, LPS mm) on the working grid, and
 *
 *     T(x) = A · (x + v(x))
 *
 * because the optimiser compares fixed features with moving features first resampled through A
 * (M_A(y) = M(A·y), on the working grid) and then sampled at x + v(x): M_A(x + v(x)) = M(T(x)). At
 * a fixed voxel centre x, v(x) is interpolated trilinearly from the working grid (border values
 * extended past its last node). Without v, T = A.
 */

/**
 * The moving image warped onto the fixed grid: out(x) = moving(T(x)), trilinear; positions outside
 * the moving volume get `fill`. `moving` lives on the moving input grid (any channel count).
 */
export function warpImage(
  moving: GridField,
  fixedGrid: Grid,
  affine: Mat4,
  displacement?: GridField,
  fill = 0,
): GridField {
  return resampleThroughField(moving, fixedGrid, affine, displacement, fill);
}

/** A moving label map (U8/U16, type kept) warped onto the fixed grid, nearest neighbour; outside → `fill`. */
export function warpLabels(
  moving: LabelField,
  fixedGrid: Grid,
  affine: Mat4,
  displacement?: GridField,
  fill = 0,
): LabelField {
  return resampleLabels(moving, fixedGrid, affine, displacement, fill);
}

/**
 * Positions P(y) (from `forEachMappedRow` on `positions`) minus the voxel centres y of `fixedGrid`: a
 * displacement on the fixed grid. `positions` has the fixed grid's dims.
 */
function displacementOf(
  fixedGrid: Grid,
  positions: Grid,
  affine: Mat4,
  displacement: GridField | undefined,
): GridField {
  const n = voxelCount(fixedGrid);
  const out = new Float32Array(3 * n);
  const g = fixedGrid.affine;
  const [nx, ny] = fixedGrid.dims;
  forEachMappedRow(positions, affine, displacement, (j, k, x, y, z) => {
    const base = nx * (j + ny * k);
    const ox = g[1]! * j + g[2]! * k + g[3]!;
    const oy = g[5]! * j + g[6]! * k + g[7]!;
    const oz = g[9]! * j + g[10]! * k + g[11]!;
    for (let i = 0; i < nx; i++) {
      out[base + i] = x[i]! - (ox + g[0]! * i);
      out[n + base + i] = y[i]! - (oy + g[4]! * i);
      out[2 * n + base + i] = z[i]! - (oz + g[8]! * i);
    }
  });
  return { grid: fixedGrid, channels: 3, data: out };
}

/**
 * The total displacement u(x) = T(x) − x at every voxel centre of `fixedGrid` (3 channels, LPS mm):
 * x_moving = x_fixed + u(x_fixed), the convention of the Register contract and of ITK/ANTs
 * displacement fields. For a large fixed grid, compute it slab by slab (`gridSlab`).
 */
export function displacementOnGrid(fixedGrid: Grid, affine: Mat4, displacement?: GridField): GridField {
  return displacementOf(fixedGrid, fixedGrid, affine, displacement);
}

/**
 * The inverse total displacement on the fixed grid: u_inv(y) = T⁻¹(y) − y at every voxel centre y of
 * `fixedGrid` (3 channels, LPS mm), so that x_fixed = y + u_inv(y) for y = x_fixed + u(x_fixed) (the
 * contract's inverse field). T⁻¹(y) = S⁻¹(A⁻¹·y) with S(x) = x + v(x): v is inverted on the working
 * grid by {@link invertDisplacement} (so a large affine part never enters the fixed-point iteration),
 * then sampled at A⁻¹·y with its border values extended.
 */
export function inverseDisplacementOnGrid(
  fixedGrid: Grid,
  affine: Mat4,
  displacement?: GridField,
  options?: InverseOptions & {
    /** v's inverse w from {@link invertDisplacement}, when computed once for many slabs. */
    readonly inverse?: GridField;
  },
): GridField {
  // Positions z = A⁻¹·y of the fixed voxel centres, as a grid; then z + w(z).
  const pulled: Grid = { dims: fixedGrid.dims, affine: compose(invert(affine), fixedGrid.affine) };
  const w = options?.inverse ?? (displacement ? invertDisplacement(displacement, options).field : undefined);
  return displacementOf(fixedGrid, pulled, IDENTITY, w);
}
