/**
 * The elastix baseline of `npm run bench:register`: finds (or installs) elastix, writes the bench's
 * parameter files (affine then B-spline, Mattes mutual information, multi-resolution), registers a
 * pair, and reads back what elastix produced: the moving labels warped by transformix (nearest) and
 * the deformation field (`transformix -def all`: ITK physical LPS mm on the fixed grid, x_moving =
 * x_fixed + u), with wall time and peak RSS of every process.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

import type { GridField } from '../field.js';
import { readGridField, type PairFiles } from './pairs.js';
import { runMeasured, type MeasuredRun } from './registrar.js';

/** Where the tools are. */
export interface ElastixTools {
  readonly elastix: string;
  readonly transformix: string;
  readonly version: string;
}

/** An executable named `name` on PATH, or null. */
export function onPath(name: string, path = process.env.PATH ?? ''): string | null {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

function found(): ElastixTools | null {
  const elastix = onPath('elastix');
  const transformix = onPath('transformix');
  if (!elastix || !transformix) return null;
  const v = spawnSync(elastix, ['--version'], { encoding: 'utf8' });
  const version = /version:?\s*([\w.]+)/i.exec(`${v.stdout}${v.stderr}`)?.[1] ?? 'unknown';
  return { elastix, transformix, version };
}

/**
 * elastix and transformix from PATH; when absent and running as root with apt-get, installs the Debian
 * package `elastix` (`apt-get install -y elastix`, after `apt-get update` if the first try fails),
 * saying what it does through `log`. Returns the reason instead when neither works.
 */
export function ensureElastix(log: (line: string) => void): ElastixTools | { reason: string } {
  const have = found();
  if (have) return have;
  const apt = onPath('apt-get');
  const root = process.getuid?.() === 0;
  if (!apt || !root)
    return {
      reason: `elastix/transformix are not on PATH and ${apt ? 'this is not root' : 'there is no apt-get'}: install the Debian package 'elastix' (or put elastix 5 on PATH)`,
    };
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const run = (args: string[]): boolean => {
    log(`  $ apt-get ${args.join(' ')}`);
    const r = spawnSync(apt, args, { encoding: 'utf8', env });
    const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-3);
    for (const l of tail) log(`    ${l}`);
    return r.status === 0;
  };
  log('elastix not on PATH: installing the Debian package (root, apt-get)');
  if (!run(['install', '-y', '--no-install-recommends', 'elastix'])) {
    if (!run(['update']) || !run(['install', '-y', '--no-install-recommends', 'elastix']))
      return { reason: 'apt-get install elastix failed (see above)' };
  }
  return found() ?? { reason: 'the elastix package installed but elastix/transformix are still not on PATH' };
}

/** One elastix parameter: a number, a string or a list of them. */
type ParamValue = number | string | boolean | readonly (number | string)[];

const COMMON: Record<string, ParamValue> = {
  FixedInternalImagePixelType: 'float',
  MovingInternalImagePixelType: 'float',
  FixedImageDimension: 3,
  MovingImageDimension: 3,
  UseDirectionCosines: true,
  Registration: 'MultiResolutionRegistration',
  FixedImagePyramid: 'FixedSmoothingImagePyramid',
  MovingImagePyramid: 'MovingSmoothingImagePyramid',
  NumberOfResolutions: 3,
  Interpolator: 'BSplineInterpolator',
  BSplineInterpolationOrder: 1,
  ResampleInterpolator: 'FinalBSplineInterpolator',
  FinalBSplineInterpolationOrder: 3,
  Resampler: 'DefaultResampler',
  Metric: 'AdvancedMattesMutualInformation',
  NumberOfHistogramBins: 32,
  Optimizer: 'AdaptiveStochasticGradientDescent',
  ImageSampler: 'RandomCoordinate',
  NumberOfSpatialSamples: 4096,
  NewSamplesEveryIteration: true,
  CheckNumberOfSamples: true,
  HowToCombineTransforms: 'Compose',
  DefaultPixelValue: 0,
  WriteResultImage: false,
  ResultImagePixelType: 'float',
  ResultImageFormat: 'nii',
};

/**
 * The bench's elastix parameter set (issue #16: affine + B-spline, mutual information), close to the
 * elastix model zoo's abdominal CT settings: Mattes MI (32 bins), adaptive stochastic gradient descent,
 * 4096 random coordinate samples renewed every iteration, 3 resolutions of Gaussian smoothing, then
 * a cubic B-spline with a 12 mm final control-point grid (48 → 24 → 12 mm), no bending penalty.
 */
export function elastixParameters(seed: number): {
  affine: Record<string, ParamValue>;
  bspline: Record<string, ParamValue>;
} {
  return {
    affine: {
      ...COMMON,
      Transform: 'AffineTransform',
      AutomaticScalesEstimation: true,
      AutomaticTransformInitialization: true,
      AutomaticTransformInitializationMethod: 'GeometricalCenter',
      MaximumNumberOfIterations: 500,
      RandomSeed: seed,
    },
    bspline: {
      ...COMMON,
      Transform: 'BSplineTransform',
      BSplineTransformSplineOrder: 3,
      FinalGridSpacingInPhysicalUnits: 12,
      GridSpacingSchedule: [4, 2, 1],
      MaximumNumberOfIterations: 500,
      RandomSeed: seed,
    },
  };
}

/** One line naming the values of {@link elastixParameters}. */
export function describeElastixParameters(seed: number): string {
  const { affine: a, bspline: b } = elastixParameters(seed);
  const v = (x: ParamValue | undefined): string => (Array.isArray(x) ? x.join(' ') : String(x));
  return (
    `affine then B-spline, ${v(a.Metric)} (${v(a.NumberOfHistogramBins)} bins), ${v(a.Optimizer)}, ` +
    `${v(a.NumberOfResolutions)} resolutions (smoothing pyramids), ${v(a.MaximumNumberOfIterations)} / ${v(b.MaximumNumberOfIterations)} iterations per level, ` +
    `${v(a.NumberOfSpatialSamples)} ${v(a.ImageSampler)} samples renewed every iteration, B-spline order ${v(b.BSplineTransformSplineOrder)} with a ` +
    `${v(b.FinalGridSpacingInPhysicalUnits)} mm final grid (schedule ${v(b.GridSpacingSchedule)}), no bending penalty, RandomSeed ${seed}; ` +
    `labels (order 0) and the field (-def all) by transformix`
  );
}

/** elastix's text format: `(Name value ...)`, strings quoted, booleans as "true"/"false". */
export function formatParameters(p: Record<string, ParamValue>): string {
  const one = (v: number | string | boolean): string =>
    typeof v === 'number' ? String(v) : `"${String(v)}"`;
  return `${Object.entries(p)
    .map(
      ([k, v]) =>
        `(${k} ${Array.isArray(v) ? (v as (number | string)[]).map(one).join(' ') : one(v as number | string | boolean)})`,
    )
    .join('\n')}\n`;
}

/** Sets `(Name value)` in an elastix parameter/transform file's text (appends when absent). */
export function setParameter(text: string, name: string, value: number | string): string {
  const line = `(${name} ${typeof value === 'number' ? value : `"${value}"`})`;
  const re = new RegExp(`^\\(${name}\\s[^)]*\\)`, 'm');
  return re.test(text) ? text.replace(re, line) : `${text.trimEnd()}\n${line}\n`;
}

/** What one elastix run produced. */
export interface ElastixResult {
  readonly displacement: GridField;
  /** The field of the affine stage alone (`TransformParameters.0.txt`), for the record. */
  readonly affineDisplacement: GridField;
  readonly warpedLabels: Uint8Array;
  /** Wall time (ms) of each process and their sum. */
  readonly timings: { readonly elastix: number; readonly transformix: number; readonly total: number };
  /** The larger VmHWM of the two processes (they run one after the other). */
  readonly peakRssBytes: number;
}

function check(run: MeasuredRun, what: string, logFile: string): void {
  if (run.code === 0) return;
  const tail = `${run.stdout}\n${run.stderr}`.trim().split('\n').slice(-15).join('\n');
  throw new Error(`${what} exited with ${run.code ?? run.signal} (log: ${logFile}):\n${tail}`);
}

/**
 * Registers one pair with elastix into `outDir` and reads the results back. `threads`: elastix's and
 * transformix's `-threads`.
 */
export async function runElastix(
  tools: ElastixTools,
  pair: PairFiles,
  outDir: string,
  opts: { seed: number; threads: number },
): Promise<ElastixResult> {
  await mkdir(outDir, { recursive: true });
  const params = elastixParameters(opts.seed);
  const pa = join(outDir, 'parameters.affine.txt');
  const pb = join(outDir, 'parameters.bspline.txt');
  await writeFile(pa, formatParameters(params.affine));
  await writeFile(pb, formatParameters(params.bspline));
  const threads = String(opts.threads);
  const reg = await runMeasured(tools.elastix, [
    '-f',
    pair.fixed,
    '-m',
    pair.moving,
    '-p',
    pa,
    '-p',
    pb,
    '-out',
    outDir,
    '-threads',
    threads,
  ]);
  check(reg, 'elastix', join(outDir, 'elastix.log'));
  // Labels: the final transform file with nearest-neighbour resampling and an integer result.
  let tp = await readFile(join(outDir, 'TransformParameters.1.txt'), 'utf8');
  tp = setParameter(tp, 'FinalBSplineInterpolationOrder', 0);
  tp = setParameter(tp, 'ResultImagePixelType', 'unsigned char');
  tp = setParameter(tp, 'ResultImageFormat', 'nii');
  tp = setParameter(tp, 'WriteResultImage', 'true');
  tp = setParameter(tp, 'DefaultPixelValue', 0);
  const tpLabels = join(outDir, 'TransformParameters.labels.txt');
  await writeFile(tpLabels, tp);
  const tfxDir = join(outDir, 'transformix');
  await mkdir(tfxDir, { recursive: true });
  const tfx = await runMeasured(tools.transformix, [
    '-in',
    pair.movingLabels,
    '-def',
    'all',
    '-tp',
    tpLabels,
    '-out',
    tfxDir,
    '-threads',
    threads,
  ]);
  check(tfx, 'transformix', join(tfxDir, 'transformix.log'));
  const labels = await readGridField(join(tfxDir, 'result.nii'), [0], true);
  const displacement = await readGridField(join(tfxDir, 'deformationField.nii'), [0, 1, 2], true);
  // For the record (not timed with the rest): the field of the affine stage alone.
  const affDir = join(outDir, 'transformix-affine');
  await mkdir(affDir, { recursive: true });
  const aff = await runMeasured(tools.transformix, [
    '-def',
    'all',
    '-tp',
    join(outDir, 'TransformParameters.0.txt'),
    '-out',
    affDir,
    '-threads',
    threads,
  ]);
  check(aff, 'transformix (affine stage)', join(affDir, 'transformix.log'));
  return {
    displacement,
    affineDisplacement: await readGridField(join(affDir, 'deformationField.nii'), [0, 1, 2], true),
    warpedLabels: Uint8Array.from(labels.data, (v) => Math.round(v)),
    timings: { elastix: reg.wallMs, transformix: tfx.wallMs, total: reg.wallMs + tfx.wallMs },
    peakRssBytes: Math.max(reg.peakRssBytes, tfx.peakRssBytes),
  };
}
