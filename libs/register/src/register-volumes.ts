import { CuriaError } from '@curia/errors';

import { affineSearch, type AffineSearchOptions, type AffineSearchResult } from './affine.js';
import type { RegistrationBackends } from './backends.js';
import { convexAdam, type ConvexAdamOptions } from './convex-adam.js';
import { voxelCount, type Grid, type GridField, type LabelField, type Mat4 } from './field.js';
import { IDENTITY, workingGrid } from './grid.js';
import { TS_MIND, type MindBackend } from './mind.js';
import { normalizeIntensities, type Modality } from './normalize.js';
import { checkpoint, type OptimControl } from './optim-control.js';
import { resampleLabels, resampleToGrid } from './resample.js';

/** What the similarity is computed on. */
export type FeatureKind = 'mind' | 'curia' | 'hybrid';

/** Family of transforms searched. */
export type TransformKind = 'rigid' | 'affine' | 'deformable';

/** One image of a pair. */
export interface RegistrationImage {
  /** Intensities (1 channel) on the image's own grid, LPS. */
  readonly image: GridField;
  readonly modality: Modality;
  /** Curia token features on the image's token grid (`tokenGrid`); required for `curia` and `hybrid`. */
  readonly tokens?: GridField | undefined;
}

/** Options of {@link registerVolumes}; every field has a default. */
export interface RegisterVolumesOptions extends OptimControl {
  /** Default `deformable`. */
  readonly transform?: TransformKind;
  /** Default `mind`. */
  readonly features?: FeatureKind;
  /** Isotropic working grid spacing in the fixed frame, mm (default 3). */
  readonly workingSpacingMm?: number;
  /** Fixed-grid mask (non-zero = inside): only voxels inside drive the similarity. */
  readonly fixedMask?: LabelField | undefined;
  /** Fixed → moving world transform to start from (default identity). */
  readonly initial?: Mat4;
  /** Affine search settings (rigid is set from `transform`). */
  readonly affine?: Omit<AffineSearchOptions, 'rigid' | 'initial' | 'signal' | 'onProgress'>;
  /** Deformable settings. */
  readonly deformable?: Omit<ConvexAdamOptions, 'signal' | 'onProgress'>;
  /**
   * Where the heavy steps run (`selectRegistrationBackends`; default TypeScript for each); the
   * deformable settings' own backends take precedence.
   */
  readonly backends?: Partial<RegistrationBackends>;
}

/** A stage of a registration and how long it took. */
export interface StageTiming {
  readonly stage: string;
  readonly ms: number;
}

/** The result: T(x) = A·(x + v(x)) (see `warp.ts`). */
export interface Registration {
  /** The isotropic grid the optimisation ran on (fixed frame). */
  readonly workingGrid: Grid;
  /** A: fixed → moving world (LPS mm). */
  readonly affine: Mat4;
  /** v on the working grid (3 channels, LPS mm); absent for rigid and affine registrations. */
  readonly displacement?: GridField | undefined;
  /** What the affine search reported. */
  readonly affineSearch: AffineSearchResult;
  /** Feature channels used. */
  readonly channels: number;
  readonly timings: readonly StageTiming[];
}

/** Projected Curia channels a registration asks Embed for (PCA of both images' tokens). */
export const CURIA_FEATURE_CHANNELS = 12;

/** Fill value of intensities outside an image, after normalisation (air for CT, the window floor otherwise). */
const OUTSIDE = 0;

/** The grid's own box as a geometry for {@link workingGrid}. */
function ownWorkingGrid(g: Grid, spacing: number): Grid {
  return workingGrid({ inputDims: g.dims, inputAffine: g.affine, inputFrame: 'LPS' }, spacing);
}

/**
 * The factor that gives a feature block total variance 1 (summed over channels, over the voxels
 * where `valid` is non-zero, or all): MIND and Curia blocks then weigh the same in a hybrid. 1 for a
 * constant block.
 */
export function unitVarianceFactor(f: GridField, valid?: Uint8Array): number {
  const n = voxelCount(f.grid);
  let total = 0;
  for (let c = 0; c < f.channels; c++) {
    let s = 0,
      s2 = 0,
      m = 0;
    for (let q = 0; q < n; q++) {
      if (valid && !valid[q]) continue;
      const x = f.data[c * n + q]!;
      s += x;
      s2 += x * x;
      m++;
    }
    if (m) total += Math.max(s2 / m - (s / m) ** 2, 0);
  }
  return total > 0 ? 1 / Math.sqrt(total) : 1;
}

/** Channel-concatenation of fields on one grid. */
function concat(blocks: readonly GridField[]): GridField {
  if (blocks.length === 1) return blocks[0]!;
  const channels = blocks.reduce((s, b) => s + b.channels, 0);
  const data = new Float32Array(channels * voxelCount(blocks[0]!.grid));
  let o = 0;
  for (const b of blocks) {
    data.set(b.data, o);
    o += b.data.length;
  }
  return { grid: blocks[0]!.grid, channels, data };
}

/** Zeroes every channel outside the mask (weights 0/1 on the field's grid). In place. */
function applyMask(f: GridField, mask: Float32Array | undefined): GridField {
  if (!mask) return f;
  const n = mask.length;
  for (let c = 0; c < f.channels; c++) for (let q = 0; q < n; q++) if (!mask[q]) f.data[c * n + q] = 0;
  return f;
}

/** A block of features of one image: the source field and the factor that gives it unit variance. */
interface FeatureBlock {
  readonly source: GridField;
  readonly scale: number;
}

/** Samples the blocks onto `grid` through `fixedToMoving`, scaled, concatenated. */
function sampleBlocks(blocks: readonly FeatureBlock[], grid: Grid, fixedToMoving: Mat4): GridField {
  return concat(
    blocks.map((b) => {
      const f = resampleToGrid(b.source, grid, fixedToMoving, OUTSIDE);
      if (b.scale !== 1) for (let i = 0; i < f.data.length; i++) f.data[i]! *= b.scale;
      return f;
    }),
  );
}

async function imageBlocks(
  img: RegistrationImage,
  kind: FeatureKind,
  spacing: number,
  role: string,
  mindBackend: MindBackend,
): Promise<FeatureBlock[]> {
  const blocks: FeatureBlock[] = [];
  if (kind === 'mind' || kind === 'hybrid') {
    const own = ownWorkingGrid(img.image.grid, spacing);
    const image = normalizeIntensities(resampleToGrid(img.image, own), img.modality);
    const mind = await mindBackend.compute(image);
    blocks.push({ source: mind, scale: unitVarianceFactor(mind) });
  }
  if (kind === 'curia' || kind === 'hybrid') {
    if (!img.tokens) {
      throw new CuriaError('INTERNAL', `${role}: Curia features were asked for but no tokens were given`);
    }
    blocks.push({ source: img.tokens, scale: unitVarianceFactor(img.tokens) });
  }
  return blocks;
}

/** Fewest working-grid voxels inside the moving volume (as a fraction) a registration starts from. */
export const MIN_OVERLAP_FRACTION = 0.01;

/**
 * FAILED_PRECONDITION when (almost) no voxel of the fixed working grid maps inside the moving volume:
 * the two volumes do not overlap in world space (wrong affine or frame, or unrelated studies), which
 * no search can repair.
 */
function checkOverlap(moving: GridField, wg: Grid, initial: Mat4): void {
  const valid = new Uint8Array(voxelCount(wg));
  resampleToGrid(moving, wg, initial, 0, valid);
  let inside = 0;
  for (const v of valid) inside += v;
  const fraction = inside / valid.length;
  if (fraction < MIN_OVERLAP_FRACTION) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `the fixed and moving volumes barely overlap in world space (${(100 * fraction).toFixed(2)}% of the fixed volume lies inside the moving one, below ${100 * MIN_OVERLAP_FRACTION}%): check both volumes' affines and patient frames, or give an initial transform`,
    );
  }
}

/**
 * Registers a moving image to a fixed image: features (MIND-SSC on each image's own isotropic grid,
 * Curia tokens on their token grids, or both, each block scaled to unit variance) are resampled onto
 * the fixed working grid; an affine (or rigid) search finds A; for `deformable`, ConvexAdam finds v
 * against the moving features resampled through A. A fixed mask zeroes both images' features
 * outside it, so only voxels inside drive the similarity.
 *
 * Cancellation: `signal` is checked between stages and inside both optimisers (CANCELLED).
 */
export async function registerVolumes(
  fixed: RegistrationImage,
  moving: RegistrationImage,
  o: RegisterVolumesOptions = {},
): Promise<Registration> {
  const kind = o.features ?? 'mind';
  const transform = o.transform ?? 'deformable';
  const spacing = o.workingSpacingMm ?? 3;
  const timings: StageTiming[] = [];
  let t0 = performance.now();
  const lap = (stage: string): void => {
    const now = performance.now();
    timings.push({ stage, ms: now - t0 });
    t0 = now;
  };
  const wg = workingGrid(
    { inputDims: fixed.image.grid.dims, inputAffine: fixed.image.grid.affine, inputFrame: 'LPS' },
    spacing,
  );
  const what = 'registration';
  checkOverlap(moving.image, wg, o.initial ?? IDENTITY);

  const backends = o.backends ?? {};
  const fixedBlocks = await imageBlocks(fixed, kind, spacing, 'fixed', backends.mind ?? TS_MIND);
  await checkpoint(o.signal, what);
  const movingBlocks = await imageBlocks(moving, kind, spacing, 'moving', backends.mind ?? TS_MIND);
  lap('features');
  await checkpoint(o.signal, what);

  const maskOn = new Map<string, Float32Array>();
  const maskFor = (g: Grid): Float32Array | undefined => {
    if (!o.fixedMask) return undefined;
    const key = `${g.dims.join('x')}:${g.affine.join(',')}`;
    let m = maskOn.get(key);
    if (!m) {
      const labels = resampleLabels(o.fixedMask, g, IDENTITY, undefined, 0).data;
      m = Float32Array.from(labels, (v) => (v ? 1 : 0));
      maskOn.set(key, m);
    }
    return m;
  };
  if (o.fixedMask && !maskFor(wg)!.some((v) => v > 0)) {
    throw new CuriaError('INVALID_ARGUMENT', 'the fixed mask has no voxel inside the fixed volume');
  }
  const fixedFeatures = applyMask(sampleBlocks(fixedBlocks, wg, IDENTITY), maskFor(wg));
  const movingOn = (fixedToMoving: Mat4, g: Grid): GridField =>
    applyMask(sampleBlocks(movingBlocks, g, fixedToMoving), maskFor(g));

  const search = await affineSearch(fixedFeatures, movingOn, {
    ...o.affine,
    rigid: transform === 'rigid',
    ...(o.initial ? { initial: o.initial } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
  lap(transform === 'rigid' ? 'rigid' : 'affine');
  const affine = search.fixedToMoving;
  let displacement: GridField | undefined;
  if (transform === 'deformable') {
    await checkpoint(o.signal, what);
    const movingAffine = movingOn(affine, wg);
    displacement = await convexAdam(fixedFeatures, movingAffine, {
      costVolume: backends.costVolume,
      smoothing: backends.smoothing,
      warp: backends.warp,
      ...o.deformable,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
    lap('deformable');
  }
  return {
    workingGrid: wg,
    affine,
    displacement,
    affineSearch: search,
    channels: fixedFeatures.channels,
    timings,
  };
}
