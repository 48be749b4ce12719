import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import type { Command } from 'commander';

import { CuriaError, isCuriaError } from '@curia/errors';
import {
  evenSliceIndices,
  generatePhantom,
  labelTableJson,
  phantomDisplaySlice,
  phantomImageNifti,
  phantomLabelsNifti,
  previewIndexHtml,
  renderSlicePng,
  volumeDisplaySlice,
  type DisplaySlice,
  type PreviewEntry,
} from '@curia/phantom';
import { openVolume } from '@curia/volume';

/** Options of `curia phantom` as commander hands them over (strings). */
export interface PhantomCommandOptions {
  readonly out?: string;
  readonly labels?: string;
  readonly size?: string;
  readonly spacing?: string;
  readonly seed?: string;
  readonly noise?: string;
  readonly orientation?: string;
  readonly shift?: string;
  readonly png?: string;
  readonly pngCount?: string;
  readonly window?: string;
  readonly from?: string;
  readonly labelNames?: string;
}

/** Exit status of `curia phantom` on bad arguments or unusable inputs. */
export const PHANTOM_USAGE_EXIT_CODE = 2;

const bad = (msg: string): CuriaError => new CuriaError('INVALID_ARGUMENT', msg);

function numberList(flag: string, v: string, count: number, integer: boolean): number[] {
  const parts = v.split(/[,x]/).map((s) => s.trim());
  const nums = parts.map(Number);
  const kind = integer ? 'positive integers' : 'positive numbers';
  if (
    parts.length !== count ||
    parts.some((s) => s === '') ||
    nums.some((n) => !Number.isFinite(n) || n <= 0 || (integer && !Number.isSafeInteger(n)))
  ) {
    throw bad(`${flag} must be ${count} comma-separated ${kind}, got '${v}'`);
  }
  return nums;
}

function triple(flag: string, v: string, integer: boolean): [number, number, number] {
  const [a, b, c] = numberList(flag, v, 3, integer);
  return [a!, b!, c!];
}

/** `x,y,z` in mm (any sign, |v| ≤ 1000): a translation of the phantom in world (RAS) space. */
function parseShift(v: string): [number, number, number] {
  const n = v.split(',').map((t) => (t.trim() === '' ? NaN : Number(t)));
  if (n.length !== 3 || n.some((x) => !Number.isFinite(x) || Math.abs(x) > 1000)) {
    throw bad(`--shift must be 3 comma-separated numbers of mm (RAS, each within ±1000), got '${v}'`);
  }
  return [n[0]!, n[1]!, n[2]!];
}

function intIn(flag: string, v: string, lo: number, hi: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < lo || n > hi) {
    throw bad(`${flag} must be an integer in ${lo}..${hi}, got '${v}'`);
  }
  return n;
}

function parseWindow(v: string | undefined): [number, number] | undefined {
  if (v === undefined) return undefined;
  const parts = v.split(',').map((s) => Number(s.trim()));
  if (parts.length !== 2 || parts.some((n) => !Number.isFinite(n)) || parts[1]! <= 0) {
    throw bad(`--window must be 'level,width' in HU with width > 0, e.g. 40,400, got '${v}'`);
  }
  return [parts[0]!, parts[1]!];
}

/** `labels.nii.gz` -> `labels.json` (the label table written next to a label map). */
export function labelTablePath(labelsPath: string): string {
  const stem = labelsPath.replace(/\.nii(\.gz)?$/i, '');
  return stem === labelsPath ? `${labelsPath}.json` : `${stem}.json`;
}

async function writeOut(
  path: string,
  bytes: Uint8Array | string,
  log: (line: string) => void,
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
  log(`wrote ${path}`);
}

/** Where previews come from: slices in display order and the names of label values. */
interface PreviewSource {
  readonly title: string;
  readonly sliceCount: number;
  readonly sliceAt: (k: number) => DisplaySlice | Promise<DisplaySlice>;
  readonly labelName: (value: number) => string | undefined;
}

/** Writes `count` evenly spaced axial PNGs plus an `index.html` with a colour legend into `dir`. */
async function writePreviews(
  dir: string,
  count: number,
  src: PreviewSource,
  window: [number, number] | undefined,
  log: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const entries: PreviewEntry[] = [];
  const seen = new Uint8Array(256);
  for (const k of evenSliceIndices(src.sliceCount, count)) {
    if (signal?.aborted) throw new CuriaError('CANCELLED', 'preview rendering was cancelled');
    const slice = await src.sliceAt(k);
    if (slice.labels) for (let i = 0; i < slice.labels.length; i++) seen[slice.labels[i]! & 255] = 1;
    const file = `axial_${String(k).padStart(3, '0')}.png`;
    await writeOut(join(dir, file), renderSlicePng(slice, window ? { window } : {}), log);
    entries.push({ file, slice: k });
  }
  const present = [...seen.keys()].filter((v) => v > 0 && seen[v] === 1);
  await writeOut(join(dir, 'index.html'), previewIndexHtml(src.title, entries, present, src.labelName), log);
}

/** Reads a `{"1": "spleen", ...}` label table; undefined when `path` is absent or unreadable as such. */
async function readLabelTable(path: string, required: boolean): Promise<Record<string, string> | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    if (required)
      throw new CuriaError('NOT_FOUND', `--label-names '${path}' does not exist or is not readable`);
    return undefined;
  }
  try {
    const table: unknown = JSON.parse(text);
    if (table && typeof table === 'object' && !Array.isArray(table)) return table as Record<string, string>;
  } catch {
    // fall through to the error below
  }
  if (required) throw bad(`--label-names '${path}' must be a JSON object {"1": "spleen", ...}`);
  return undefined;
}

async function previewExisting(
  o: PhantomCommandOptions,
  from: string,
  log: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  const generationFlags = (
    ['out', 'size', 'spacing', 'seed', 'noise', 'orientation', 'shift'] as const
  ).filter((f) => o[f] !== undefined);
  if (generationFlags.length) {
    throw bad(`--${generationFlags[0]} only applies when generating a phantom, not with --from`);
  }
  if (o.png === undefined) throw bad('--from needs --png <dir> (it only renders previews)');
  if (o.labelNames !== undefined && o.labels === undefined) throw bad('--label-names needs --labels <seg>');
  const count = intIn('--png-count', o.pngCount ?? '6', 1, 1000);
  const window = parseWindow(o.window);
  const opts = signal ? { signal } : {};
  const vol = await openVolume({ kind: 'path', path: from }, opts);
  const seg = o.labels === undefined ? undefined : await openVolume({ kind: 'path', path: o.labels }, opts);
  if (seg && seg.geometry.canonicalDims.join() !== vol.geometry.canonicalDims.join()) {
    throw bad(
      `--labels grid ${seg.geometry.canonicalDims.join('x')} differs from --from grid ${vol.geometry.canonicalDims.join('x')}`,
    );
  }
  const table =
    o.labelNames !== undefined
      ? await readLabelTable(o.labelNames, true)
      : o.labels !== undefined
        ? await readLabelTable(labelTablePath(o.labels), false)
        : undefined;
  const src: PreviewSource = {
    title: `curia preview: ${basename(from)}`,
    sliceCount: vol.sliceCount,
    sliceAt: (k) => volumeDisplaySlice(vol, k, seg),
    labelName: (v) => {
      const name = table?.[String(v)];
      return typeof name === 'string' ? name : undefined;
    },
  };
  await writePreviews(o.png, count, src, window, log, signal);
}

/**
 * `curia phantom`: generates the synthetic abdominal CT phantom (`--out`, `--labels` NIfTI plus a
 * `labels.json` table) and/or PNG previews of evenly spaced axial slices with label overlays
 * (`--png`), or previews an existing volume (`--from`, optional `--labels` segmentation). Each
 * written file is reported through `log`. Bad arguments throw INVALID_ARGUMENT with a one-line reason.
 */
export async function phantomAction(
  o: PhantomCommandOptions,
  log: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
  signal?: AbortSignal,
): Promise<void> {
  if (o.from !== undefined) {
    try {
      await stat(o.from);
    } catch {
      throw new CuriaError('NOT_FOUND', `--from '${o.from}' does not exist or is not readable`);
    }
    await previewExisting(o, o.from, log, signal);
    return;
  }
  if (o.labelNames !== undefined) throw bad('--label-names only applies with --from');
  const orientation = (o.orientation ?? 'LPS').toUpperCase();
  if (orientation !== 'LPS' && orientation !== 'RAS') {
    throw bad(`--orientation must be LPS or RAS, got '${o.orientation}'`);
  }
  const count = intIn('--png-count', o.pngCount ?? '6', 1, 1000);
  const window = parseWindow(o.window);
  const noise = o.noise === undefined ? undefined : Number(o.noise);
  if (noise !== undefined && (o.noise!.trim() === '' || !Number.isFinite(noise) || noise < 0)) {
    throw bad(`--noise must be a number of HU >= 0, got '${o.noise}'`);
  }
  const size = o.size !== undefined ? triple('--size', o.size, true) : undefined;
  const spacing = o.spacing !== undefined ? triple('--spacing', o.spacing, false) : undefined;
  const seed = o.seed !== undefined ? intIn('--seed', o.seed, 0, 0xffffffff) : undefined;
  if (o.out === undefined && o.labels === undefined && o.png === undefined) {
    throw bad('nothing to write: give --out <phantom.nii.gz>, --labels <labels.nii.gz> and/or --png <dir>');
  }
  const shift = o.shift !== undefined ? parseShift(o.shift) : undefined;
  const generated = generatePhantom({
    ...(size ? { size } : {}),
    ...(spacing ? { spacing } : {}),
    ...(seed !== undefined ? { seed } : {}),
    ...(noise !== undefined ? { noiseSigma: noise } : {}),
    orientation,
    ...(signal ? { signal } : {}),
  });
  // The whole phantom moved in world space: a pair for `curia register` with a known motion.
  const p = shift
    ? {
        ...generated,
        affine: generated.affine.map((v, q) => (q % 4 === 3 && q < 12 ? v + shift[q >> 2]! : v)),
      }
    : generated;
  // Gzip follows each file's name.
  if (o.out !== undefined) await writeOut(o.out, phantomImageNifti(p, { gzip: /\.gz$/i.test(o.out) }), log);
  if (o.labels !== undefined) {
    await writeOut(o.labels, phantomLabelsNifti(p, { gzip: /\.gz$/i.test(o.labels) }), log);
    await writeOut(labelTablePath(o.labels), labelTableJson(p.labelNames), log);
  }
  if (o.png !== undefined) {
    const src: PreviewSource = {
      title: `curia phantom (seed ${p.seed}, ${p.dims.join('x')})`,
      sliceCount: p.dims[2],
      sliceAt: (k) => phantomDisplaySlice(p, k),
      labelName: (v) => p.labelNames[v],
    };
    await writePreviews(o.png, count, src, window, log, signal);
  }
}

/** Registers `curia phantom`. */
export function registerPhantom(program: Command): void {
  program
    .command('phantom')
    .description(
      'Generate a synthetic abdominal CT phantom (NIfTI + label map) and/or axial PNG previews with label overlays ' +
        '(radiological convention: patient right on the image left, anterior up)',
    )
    .option('--out <file>', 'phantom CT output, .nii or .nii.gz (int16 HU)')
    .option(
      '--labels <file>',
      'label map output .nii[.gz] (+ a .json label table); with --from: a segmentation to overlay',
    )
    .option('--size <nx,ny,nz>', 'grid size', '256,256,64')
    .option(
      '--spacing <sx,sy,sz>',
      'voxel spacing in mm (default: 409.6/max(nx,ny) in-plane, 2.5 between slices)',
    )
    .option('--seed <n>', 'noise seed (uint32)', '1')
    .option('--noise <hu>', 'Gaussian noise sigma in HU', '15')
    .option('--orientation <LPS|RAS>', 'stored voxel axis directions', 'LPS')
    .option(
      '--shift <x,y,z>',
      'translate the phantom in world space by x,y,z mm (RAS), e.g. for a registration pair',
    )
    .option('--png <dir>', 'write PNG previews of evenly spaced axial slices into <dir>')
    .option('--png-count <n>', 'number of preview slices', '6')
    .option('--window <level,width>', 'preview display window in HU', '40,400')
    .option('--from <volume>', 'preview an existing NIfTI file or DICOM directory instead of generating')
    .option(
      '--label-names <file.json>',
      'with --from: label value -> name table ({"1": "spleen", ...}); default: the .json next to --labels',
    )
    .action(async (opts: PhantomCommandOptions, cmd: Command) => {
      // Defaults are shown in --help but only explicitly given flags conflict with --from.
      const given = Object.fromEntries(
        Object.entries(opts).filter(([k]) => cmd.getOptionValueSource(k) !== 'default'),
      ) as PhantomCommandOptions;
      try {
        await phantomAction(opts.from !== undefined ? given : opts);
      } catch (e) {
        if (!isCuriaError(e) || e.code === 'INTERNAL' || e.code === 'CANCELLED') throw e;
        process.stderr.write(`curia phantom: ${e.message}\n`);
        process.exitCode = PHANTOM_USAGE_EXIT_CODE;
      }
    });
}
