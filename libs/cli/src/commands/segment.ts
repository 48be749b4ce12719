import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { Command } from 'commander';

import {
  collectSegmentation,
  createCuriaClient,
  fitUploadRequests,
  segment,
  segmentUploadRequests,
  studyFiles,
  type FitStudyFiles,
  type SegmentationResult,
  type SegmentStartFields,
} from '@curia/client';
import { CuriaError } from '@curia/errors';
import { localTarget } from '@curia/kit';
import { renderSlicePng, volumeDisplaySlice } from '@curia/phantom';
import { openVolume } from '@curia/volume';

import {
  addConnectionOptions,
  clientOptions,
  collect,
  failCommand,
  mustExist as exists,
  openChannel,
  type ConnectionOptions,
} from './shared.js';

const invalid = (msg: string): CuriaError => new CuriaError('INVALID_ARGUMENT', msg);

/** `x,y,z[:+|-]` (input voxel indices; `-` = background click) as a point prompt. */
export function parsePoint(v: string, label: string): segment.PointPrompt {
  const m = /^\s*([^:]+?)\s*(?::\s*([+-]))?\s*$/.exec(v);
  const xyz = (m?.[1] ?? '').split(',').map((s) => Number(s.trim()));
  if (!m || xyz.length !== 3 || xyz.some((x) => !Number.isFinite(x))) {
    throw invalid(`--point '${v}': expected x,y,z (input voxel indices), optionally :+ or :- (background)`);
  }
  return segment.PointPrompt.fromPartial({
    xyz,
    space: segment.CoordinateSpace.INPUT_VOXEL,
    positive: m[2] !== '-',
    label,
  });
}

/** `x0,y0,z0,x1,y1,z1` (input voxel indices) as a box prompt. */
export function parseBox(v: string, label: string): segment.BoxPrompt {
  const n = v.split(',').map((s) => Number(s.trim()));
  if (n.length !== 6 || n.some((x) => !Number.isFinite(x)))
    throw invalid(`--box '${v}': expected x0,y0,z0,x1,y1,z1`);
  return segment.BoxPrompt.fromPartial({
    min: n.slice(0, 3),
    max: n.slice(3),
    space: segment.CoordinateSpace.INPUT_VOXEL,
    label,
  });
}

/** `1=spleen,5=liver` as classes. */
export function parseClasses(v: string | undefined): segment.SegmentClass[] {
  if (!v) return [];
  return v.split(',').map((part) => {
    const m = /^\s*(\d+)\s*=\s*(\S.*?)\s*$/.exec(part);
    if (!m) throw invalid(`--classes '${part}': expected value=name (e.g. 5=liver)`);
    return { value: Number(m[1]), label: m[2]! };
  });
}

/** A comma list of canonical slice indices. */
function parseSlices(v: string): number[] {
  return v.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 0)
      throw invalid(`--slices '${v}': expected comma-separated slice indices`);
    return n;
  });
}

/** Runs `fn` with a SegmentService client, reporting gRPC failures as `curia segment: STATUS: details`. */
async function withClient<T>(
  target: string,
  o: ConnectionOptions,
  fn: (c: ReturnType<typeof createCuriaClient<typeof segment.SegmentServiceDefinition>>) => Promise<T>,
): Promise<T> {
  const channel = openChannel(target, o);
  try {
    return await fn(createCuriaClient(segment.SegmentServiceDefinition, channel, clientOptions(o)));
  } finally {
    channel.close();
  }
}

/** Options of `curia segment FILE`. */
export interface SegmentCommandOptions extends ConnectionOptions {
  readonly head?: string;
  readonly point?: string[];
  readonly box?: string[];
  readonly label?: string;
  readonly backbone?: string;
  readonly classes?: string;
  readonly smooth?: boolean;
  readonly out?: string;
  readonly dicomSeg?: string;
  readonly png?: string;
  readonly reference?: string;
  readonly target?: string;
  readonly timeout?: string;
  readonly studyId?: string;
  readonly json?: boolean;
}

/** Segments a study through SegmentService and writes what was asked for; returns the collected result. */
export async function segmentAction(input: string, o: SegmentCommandOptions): Promise<SegmentationResult> {
  await exists(input, 'input');
  const label = o.label ?? 'object';
  const points = (o.point ?? []).map((p) => parsePoint(p, label));
  const boxes = (o.box ?? []).map((b) => parseBox(b, label));
  if (!o.head && points.length === 0) {
    throw invalid('name a segmentation head (--head NAME[@VERSION]) or click (--point x,y,z)');
  }
  const timeoutS = Number(o.timeout ?? '600');
  if (!(timeoutS > 0)) throw invalid(`--timeout must be > 0 seconds, got '${o.timeout}'`);
  if (o.reference) await exists(o.reference, '--reference');
  const { files, format } = await studyFiles(input);
  const start: SegmentStartFields = {
    header: { studyId: o.studyId ?? 'cli', format },
    model: o.head ?? '',
    backbone: o.backbone ?? '',
    points,
    boxes,
    classNames: o.classes ? o.classes.split(',').map((c) => c.trim()) : [],
    ...(o.smooth !== undefined ? { smoothAcrossSlices: o.smooth } : {}),
    output: {
      omitNiftiMask: !o.out && !o.png,
      gzip: o.out?.endsWith('.gz') ?? false,
      dicomSeg: o.dicomSeg !== undefined,
    },
    ...(o.reference
      ? {
          referenceLabels: {
            encoding: { $case: 'nifti' as const, value: new Uint8Array(await readFile(o.reference)) },
          },
        }
      : {}),
  };
  const r = await withClient(o.target ?? localTarget('segment'), o, (c) =>
    collectSegmentation(c.segment(segmentUploadRequests(start, files), { deadline: timeoutS * 1000 })),
  );
  if (o.out) await writeFile(o.out, r.mask);
  if (o.dicomSeg) await writeFile(o.dicomSeg, r.dicomSeg);
  if (o.png) await writeOverlays(input, r, o.png);
  return r;
}

/** PNG overlays of every canonical slice with foreground (radiological display order). */
async function writeOverlays(input: string, r: SegmentationResult, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const image = await openVolume({ kind: 'path', path: input });
  const mask = await openVolume({ kind: 'bytes', data: r.mask, filename: r.maskFileName || 'mask.nii' });
  for (let k = 0; k < image.geometry.canonicalDims[0]; k++) {
    const slice = await volumeDisplaySlice(image, k, mask);
    if (!Array.from(slice.labels ?? []).some((v) => v !== 0)) continue;
    await writeFile(join(dir, `slice-${String(k).padStart(3, '0')}.png`), renderSlicePng(slice));
  }
}

/** The JSON document `curia segment --json` prints. */
export function segmentationJson(r: SegmentationResult, o: SegmentCommandOptions): Record<string, unknown> {
  const s = r.summary;
  return {
    head: s?.head?.info ? `${s.head.info.name}@${s.head.info.version}` : undefined,
    model: s?.model ? `${s.model.name}@${s.model.version}` : undefined,
    demoWeights: s?.demoWeights ?? false,
    classes: s?.classes.map((c) => ({
      label: c.label,
      value: c.value,
      voxels: Number(c.voxelCount),
      volumeMl: c.volumeMl,
      score: c.score,
    })),
    evaluation: s?.evaluation.map((e) => ({ label: e.label, dice: e.dice, hd95Mm: e.hd95Mm })),
    slicesEmbedded: s?.slicesEmbedded,
    slicesFromCache: s?.slicesFromCache,
    timingsMs: Object.fromEntries((s?.timings ?? []).map((t) => [t.stage, Math.round(t.millis)])),
    ...(o.out ? { maskFile: o.out } : {}),
    ...(o.dicomSeg ? { dicomSegFile: o.dicomSeg } : {}),
    ...(o.png ? { pngDir: o.png } : {}),
  };
}

/** Options of `curia segment fit`. */
export interface SegmentFitOptions extends ConnectionOptions {
  readonly name: string;
  readonly image: string[];
  readonly labels: string[];
  readonly slices?: string[];
  readonly kind?: string;
  readonly classes?: string;
  readonly model?: string;
  readonly folds?: string;
  readonly description?: string;
  readonly demo?: boolean;
  readonly smooth?: boolean;
  /** Make the new version what the unversioned name resolves to (FitStart.promote). */
  readonly promote?: boolean;
  readonly target?: string;
  readonly timeout?: string;
  readonly json?: boolean;
}

/** Fits a segmentation head through SegmentService. */
export async function segmentFitAction(o: SegmentFitOptions): Promise<segment.FitResponse> {
  if (o.image.length === 0 || o.image.length !== o.labels.length) {
    throw invalid('give one --labels per --image (pairs in order)');
  }
  const slices = o.slices ?? [];
  if (slices.length > 1 && slices.length !== o.image.length) {
    throw invalid('give --slices once (for every study) or once per --image');
  }
  const kind =
    o.kind === undefined || o.kind === 'linear'
      ? segment.SegmentHeadKind.LINEAR
      : o.kind === 'conv3x3'
        ? segment.SegmentHeadKind.CONV3X3
        : (() => {
            throw invalid(`--kind must be linear or conv3x3, got '${o.kind}'`);
          })();
  const studies: FitStudyFiles[] = [];
  for (const [i, image] of o.image.entries()) {
    await exists(image, '--image');
    await exists(o.labels[i]!, '--labels');
    const { files, format } = await studyFiles(image);
    const s = slices.length === 1 ? slices[0] : slices[i];
    studies.push({
      study: {
        header: { studyId: `cli-fit-${i}`, format },
        labels: { encoding: { $case: 'nifti', value: new Uint8Array(await readFile(o.labels[i]!)) } },
        labelledSlices: s ? parseSlices(s) : [],
      },
      files,
    });
  }
  const timeoutS = Number(o.timeout ?? '1800');
  return withClient(o.target ?? localTarget('segment'), o, (c) =>
    c.fit(
      fitUploadRequests(
        {
          name: o.name,
          model: o.model ?? '',
          kind,
          classes: parseClasses(o.classes),
          folds: o.folds ? Number(o.folds) : 0,
          description: o.description ?? '',
          demo: o.demo ?? false,
          smoothAcrossSlices: o.smooth ?? false,
          promote: o.promote ?? false,
        },
        studies,
      ),
      { deadline: timeoutS * 1000 },
    ),
  );
}

/** Registers `curia segment` and `curia segment fit`. */
export function registerSegment(program: Command): void {
  const seg = addConnectionOptions(program.command('segment'))
    .enablePositionalOptions()
    .description(
      'Segment a study through SegmentService (a fitted head, or clicks), or fit a head (`curia segment fit`)',
    )
    .argument('[input]', 'file.nii[.gz] or a directory holding one DICOM series')
    .option('--head <name[@version]>', "segmentation head (default with --point: the prompt head 'click')")
    .option('--point <x,y,z[:+|-]>', 'click at input voxel x,y,z; :- marks background (repeatable)', collect)
    .option('--box <x0,y0,z0,x1,y1,z1>', 'restrict to a box of input voxels (repeatable)', collect)
    .option('--label <name>', 'name of the clicked object', 'object')
    .option('--backbone <name[@version]>', "backbone for the prompt head (default: the server's)")
    .option('--classes <names>', 'only these classes of the head, comma-separated')
    .option('--smooth', 'smooth the head scores across neighbouring slices')
    .option('--no-smooth', 'do not smooth, whatever the head says')
    .option('--out <mask.nii[.gz]>', 'write the label map (on the input grid, input affine)')
    .option('--dicom-seg <file.dcm>', 'DICOM series input: also write a DICOM SEG referencing it')
    .option('--png <dir>', 'write PNG overlays of the slices with foreground')
    .option('--reference <labels.nii.gz>', 'report Dice and HD95 against these labels')
    .option('--target <host:port>', 'SegmentService address', localTarget('segment'))
    .option('--study-id <id>', 'opaque study id for logs (never PHI)')
    .option('--timeout <seconds>', 'deadline for the whole call', '600')
    .option('--json', 'print one JSON document')
    .action(async (input: string | undefined, opts: SegmentCommandOptions) => {
      if (!input) {
        seg.help({ error: true });
      }
      try {
        const r = await segmentAction(input!, opts);
        const j = segmentationJson(r, opts);
        if (opts.json) process.stdout.write(`${JSON.stringify(j, null, 2)}\n`);
        else {
          const lines = [
            `head ${String(j.head)} on ${String(j.model)}${j.demoWeights ? '  (DEMO WEIGHTS: integration testing only)' : ''}`,
            ...(r.summary?.classes ?? []).map(
              (c) =>
                `  ${c.label}: ${Number(c.voxelCount)} voxels, ${c.volumeMl.toFixed(1)} mL, confidence ${c.score.toFixed(3)}`,
            ),
            ...(r.summary?.evaluation ?? []).map(
              (e) =>
                `  vs reference ${e.label}: Dice ${e.dice.toFixed(3)}${e.hd95Mm !== undefined ? `, HD95 ${e.hd95Mm.toFixed(1)} mm` : ''}`,
            ),
            `slices embedded ${r.summary?.slicesEmbedded ?? 0}, from cache ${r.summary?.slicesFromCache ?? 0}`,
            ...(opts.out ? [`label map: ${opts.out}`] : []),
            ...(opts.dicomSeg ? [`DICOM SEG: ${opts.dicomSeg}`] : []),
            ...(opts.png ? [`overlays: ${opts.png}/`] : []),
          ];
          process.stdout.write(`${lines.join('\n')}\n`);
        }
      } catch (err) {
        failCommand('segment', err);
      }
    });
  addConnectionOptions(seg.command('fit'))
    .description('Fit a segmentation head from labelled studies (pairs of --image and --labels)')
    .requiredOption('--name <name>', 'head name (lowercase a-z, 0-9, -)')
    .requiredOption('--image <file|dir>', 'a study (repeatable, paired with --labels)', collect, [])
    .requiredOption('--labels <labels.nii.gz>', 'its label map on the same grid (repeatable)', collect, [])
    .option(
      '--slices <list>',
      'labelled canonical slices, once for all studies or once per study (default: every labelled slice)',
      collect,
    )
    .option('--kind <linear|conv3x3>', 'head architecture', 'linear')
    .option(
      '--classes <list>',
      'classes to learn as value=name, e.g. 1=spleen,5=liver (default: every labelled value)',
    )
    .option('--model <name[@version]>', "backbone (default: the server's)")
    .option('--folds <n>', 'cross-validation folds over the labelled slices')
    .option('--description <text>', 'what the head is for')
    .option('--demo', 'mark the head as trained on demo data')
    .option('--smooth', 'smooth scores across slices by default')
    .option(
      '--promote',
      "also make the new version what the unversioned name resolves to (default: only a new name's first version is)",
    )
    .option('--target <host:port>', 'SegmentService address', localTarget('segment'))
    .option('--timeout <seconds>', 'deadline', '1800')
    .option('--json', 'print one JSON document')
    .action(async (opts: SegmentFitOptions) => {
      try {
        const r = await segmentFitAction(opts);
        const h = r.head;
        const cv = Object.fromEntries(
          (h?.fit?.cvDice ?? []).map((d) => [d.label, Number(d.dice.toFixed(4))]),
        );
        if (opts.json) {
          process.stdout.write(
            `${JSON.stringify({ head: `${h?.info?.name}@${h?.info?.version}`, reused: r.reused, promoted: h?.info?.promoted ?? false, cvDice: cv, slices: h?.fit?.slices, folds: h?.fit?.folds }, null, 2)}\n`,
          );
        } else {
          process.stdout.write(
            `${r.reused ? 'reused' : 'fitted'} ${h?.info?.name}@${h?.info?.version} on ${h?.fit?.slices} slices; cross-validated Dice (${h?.fit?.folds} folds): ${Object.entries(
              cv,
            )
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')}\n`,
          );
          if (!h?.info?.promoted) {
            process.stdout.write(
              `not promoted: '${h?.info?.name}' still resolves to its promoted version; serve this one with ` +
                `\`curia head promote ${h?.info?.name} ${h?.info?.version} --segment\`\n`,
            );
          }
        }
      } catch (err) {
        failCommand('segment fit', err);
      }
    });
}
