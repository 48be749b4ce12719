import { mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import type { Command } from 'commander';

import {
  collectRegistration,
  common,
  createCuriaClient,
  register,
  registerUploadRequests,
  studyFiles,
  type RegisterInputFiles,
  type RegistrationResult,
} from '@curia/client';
import { CuriaError } from '@curia/errors';
import { localTarget } from '@curia/kit';
import { renderSlicePng, volumeDisplaySlice, type DisplaySlice } from '@curia/phantom';
import { gridSlab, IDENTITY, intensityWindow, resampleToGrid, volumeField } from '@curia/register';
import { flipWorldXY, mat4Multiply, openVolume } from '@curia/volume';

import { checkerboard } from './checkerboard.js';
import {
  addConnectionOptions,
  clientOptions,
  collect,
  failCommand,
  mustExist,
  stderrProgressBar,
  openChannel,
  type ConnectionOptions,
} from './shared.js';

const invalid = (msg: string): CuriaError => new CuriaError('INVALID_ARGUMENT', msg);

/** Options of `curia register`. */
export interface RegisterCommandOptions extends ConnectionOptions {
  readonly fixed: string;
  readonly moving: string;
  readonly movingLabels?: string[];
  readonly fixedLabels?: string[];
  readonly fixedMask?: string;
  readonly features?: string;
  readonly transform?: string;
  readonly workingSpacing?: string;
  readonly fixedModality?: string;
  readonly movingModality?: string;
  readonly inverse?: boolean;
  readonly backbone?: string;
  readonly target?: string;
  readonly deadline?: string;
  readonly studyId?: string;
  readonly json?: boolean;
  readonly outDir: string;
}

const FEATURES = {
  mind: register.FeatureSet.MIND,
  curia: register.FeatureSet.CURIA,
  hybrid: register.FeatureSet.HYBRID,
} as const;
const TRANSFORMS = {
  rigid: register.TransformModel.RIGID,
  affine: register.TransformModel.AFFINE,
  deformable: register.TransformModel.DEFORMABLE,
} as const;
const MODALITIES = {
  ct: register.Modality.CT,
  mr: register.Modality.MR,
  pet: register.Modality.PET,
  cbct: register.Modality.CBCT,
  other: register.Modality.OTHER,
} as const;

/** `v` looked up in `table` (undefined when the flag is absent), or INVALID_ARGUMENT listing the choices. */
function choice<T>(table: Readonly<Record<string, T>>, v: string | undefined, flag: string): T | undefined {
  if (v === undefined) return undefined;
  const hit = table[v.toLowerCase()];
  if (hit === undefined) throw invalid(`${flag} must be one of ${Object.keys(table).join(', ')}, got '${v}'`);
  return hit;
}

/** Input ids of the images (label maps use their name; fixed label maps `fixed.NAME`). */
const FIXED_ID = 'fixed';
const MOVING_ID = 'moving';
const MASK_ID = 'fixed-mask';
const RESERVED = new Set([FIXED_ID, MOVING_ID, MASK_ID]);
/** A label map's name: also its input id and part of the warped file's name. */
const LABEL_NAME = /^[A-Za-z0-9_-]{1,48}$/;

/** A label map named for pairing: `--moving-labels organs=seg.nii.gz`, or a path named after its file. */
export interface LabelSpec {
  readonly name: string;
  readonly path: string;
}

/**
 * `NAME=PATH`, or a plain `PATH` named after its file (the name without `.nii`/`.nii.gz`, characters
 * outside [A-Za-z0-9_-] replaced by `_`). A moving and a fixed label map of the same name are
 * compared (Dice per label value before and after).
 */
export function parseLabelSpec(v: string, flag: string): LabelSpec {
  const eq = v.indexOf('=');
  if (eq > 0 && LABEL_NAME.test(v.slice(0, eq))) {
    const path = v.slice(eq + 1);
    if (!path) throw invalid(`${flag} '${v}': expected NAME=PATH`);
    return { name: v.slice(0, eq), path };
  }
  const name = basename(v)
    .replace(/\.nii(\.gz)?$/i, '')
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 48);
  if (!name) throw invalid(`${flag} '${v}': name the label map (NAME=PATH)`);
  return { name, path: v };
}

/**
 * The label maps of both roles, named and paired: names unique per role, none of the input ids
 * `fixed`, `moving`, `fixed-mask`, and every fixed label map has a moving one of its name.
 */
export function pairLabels(
  moving: readonly string[],
  fixed: readonly string[],
): { moving: LabelSpec[]; fixed: LabelSpec[] } {
  const parse = (list: readonly string[], flag: string): LabelSpec[] => {
    const specs = list.map((v) => parseLabelSpec(v, flag));
    const seen = new Set<string>();
    for (const s of specs) {
      if (RESERVED.has(s.name)) {
        throw invalid(`${flag} '${s.path}': the name '${s.name}' is reserved; name it NAME=PATH`);
      }
      if (seen.has(s.name)) {
        throw invalid(`${flag}: two label maps are named '${s.name}'; name them NAME=PATH`);
      }
      seen.add(s.name);
    }
    return specs;
  };
  const m = parse(moving, '--moving-labels');
  const f = parse(fixed, '--fixed-labels');
  for (const s of f) {
    if (!m.some((x) => x.name === s.name)) {
      const names = m.map((x) => `'${x.name}'`).join(', ') || 'none';
      throw invalid(
        `--fixed-labels '${s.path}' is named '${s.name}', but no --moving-labels has that name (moving label maps: ${names}); pair them as NAME=PATH`,
      );
    }
  }
  return { moving: m, fixed: f };
}

/** The RegisterService options of a command line: every output as files, transform in LPS. */
export function registerOptionsOf(
  o: RegisterCommandOptions,
): NonNullable<Parameters<typeof register.RegisterOptions.fromPartial>[0]> {
  let workingSpacingMm = 0;
  if (o.workingSpacing !== undefined) {
    workingSpacingMm = Number(o.workingSpacing);
    if (!(Number.isFinite(workingSpacingMm) && workingSpacingMm > 0)) {
      throw invalid(`--working-spacing must be a number of mm > 0, got '${o.workingSpacing}'`);
    }
  }
  return {
    transform: choice(TRANSFORMS, o.transform, '--transform') ?? register.TransformModel.UNSPECIFIED,
    features: choice(FEATURES, o.features, '--features') ?? register.FeatureSet.UNSPECIFIED,
    workingSpacingMm,
    backbone: o.backbone ?? '',
    returnDisplacement: true,
    displacementFormat: register.DisplacementFormat.NIFTI,
    returnInverse: o.inverse ?? false,
    returnWarpedImage: true,
    warpedFormat: register.WarpedFormat.NIFTI,
    frame: common.CoordinateFrame.LPS,
  };
}

/** Where `curia register` wrote each file. */
export interface RegisterFiles {
  readonly displacement: string;
  readonly inverseDisplacement?: string;
  /** By input id: `moving` and each moving label map's name. */
  readonly warped: Record<string, string>;
  readonly transform: string;
  readonly quality: string;
  readonly checkerboardBefore: string;
  readonly checkerboardAfter: string;
}

/** What `curia register` did. */
export interface RegisterOutcome {
  readonly result: RegistrationResult;
  readonly files: RegisterFiles;
  /** The document written to quality.json. */
  readonly quality: Record<string, unknown>;
  /** Wall time of the call and the files, ms. */
  readonly wallMs: number;
}

/** One input of the request, with the flag that named it (for messages). */
interface DeclaredInput {
  readonly inputId: string;
  readonly role: register.InputRole;
  readonly path: string;
  readonly flag: string;
  readonly modality?: register.Modality | undefined;
  readonly label?: string;
}

/** Registers `--moving` onto `--fixed` through RegisterService and writes every output into `--out-dir`. */
export async function registerAction(
  o: RegisterCommandOptions,
  onProgress?: (p: common.Progress) => void,
): Promise<RegisterOutcome> {
  const started = performance.now();
  const options = registerOptionsOf(o);
  const labels = pairLabels(o.movingLabels ?? [], o.fixedLabels ?? []);
  const deadlineS = Number(o.deadline ?? '600');
  if (!(deadlineS > 0)) throw invalid(`--deadline must be > 0 seconds, got '${o.deadline}'`);
  const fixedModality = choice(MODALITIES, o.fixedModality, '--fixed-modality');
  const movingModality = choice(MODALITIES, o.movingModality, '--moving-modality');

  const studyId = o.studyId ?? 'cli';
  const declared: DeclaredInput[] = [
    {
      inputId: FIXED_ID,
      role: register.InputRole.FIXED,
      path: o.fixed,
      flag: '--fixed',
      modality: fixedModality,
    },
    {
      inputId: MOVING_ID,
      role: register.InputRole.MOVING,
      path: o.moving,
      flag: '--moving',
      modality: movingModality,
    },
    ...labels.moving.map((l) => ({
      inputId: l.name,
      role: register.InputRole.MOVING_LABEL_MAP,
      path: l.path,
      flag: '--moving-labels',
      label: l.name,
    })),
    ...labels.fixed.map((l) => ({
      inputId: `fixed.${l.name}`,
      role: register.InputRole.FIXED_LABEL_MAP,
      path: l.path,
      flag: '--fixed-labels',
      label: l.name,
    })),
    ...(o.fixedMask
      ? [{ inputId: MASK_ID, role: register.InputRole.FIXED_MASK, path: o.fixedMask, flag: '--fixed-mask' }]
      : []),
  ];
  const inputs: RegisterInputFiles[] = [];
  for (const d of declared) {
    await mustExist(d.path, d.flag, 'NOT_FOUND');
    const { files, format } = await studyFiles(d.path);
    inputs.push({
      input: {
        inputId: d.inputId,
        role: d.role,
        header: { studyId, format },
        label: d.label ?? '',
        modality: d.modality ?? register.Modality.UNSPECIFIED,
      },
      files,
    });
  }

  const channel = openChannel(o.target ?? localTarget('register'), o);
  let result: RegistrationResult;
  try {
    const client = createCuriaClient(register.RegisterServiceDefinition, channel, clientOptions(o));
    result = await collectRegistration(
      client.register(registerUploadRequests(options, inputs), { deadline: deadlineS * 1000 }),
      onProgress,
    );
  } finally {
    channel.close();
  }

  const missing = (what: string): CuriaError =>
    new CuriaError('INTERNAL', `RegisterService returned no ${what} although it was asked for`);
  if (!result.summary) throw missing('summary');
  if (result.displacementNifti.length === 0) throw missing('displacement.nii.gz');
  if (o.inverse && result.inverseNifti.length === 0) throw missing('inverse_displacement.nii.gz');
  const warpedMoving = result.warped.get(MOVING_ID)?.nifti;
  if (!warpedMoving?.length) throw missing('warped moving image');

  await mkdir(o.outDir, { recursive: true });
  const out = (name: string): string => join(o.outDir, name);
  const warped: Record<string, string> = {};
  for (const id of [MOVING_ID, ...labels.moving.map((l) => l.name)]) {
    const bytes = result.warped.get(id)?.nifti;
    if (!bytes?.length) throw missing(`warped output for '${id}'`);
    warped[id] = out(`warped_${id}.nii.gz`);
    await writeFile(warped[id], bytes);
  }
  const files: RegisterFiles = {
    displacement: out('displacement.nii.gz'),
    ...(o.inverse ? { inverseDisplacement: out('inverse_displacement.nii.gz') } : {}),
    warped,
    transform: out('transform.json'),
    quality: out('quality.json'),
    checkerboardBefore: out('checkerboard_before.png'),
    checkerboardAfter: out('checkerboard_after.png'),
  };
  await writeFile(files.displacement, result.displacementNifti);
  if (files.inverseDisplacement) await writeFile(files.inverseDisplacement, result.inverseNifti);
  await writeFile(files.transform, `${JSON.stringify(transformJson(result), null, 2)}\n`);
  const quality = qualityJson(result, options);
  await writeFile(files.quality, `${JSON.stringify(quality, null, 2)}\n`);
  const [before, after] = await checkerboards(o.fixed, o.moving, warpedMoving);
  await writeFile(files.checkerboardBefore, before);
  await writeFile(files.checkerboardAfter, after);
  return { result, files, quality, wallMs: performance.now() - started };
}

/** RAS = F·A·F for a world → world affine in LPS (F = diag(−1, −1, 1, 1)), and back. */
function otherFrame(m: readonly number[]): number[] {
  return mat4Multiply(flipWorldXY(m), flipWorldXY(IDENTITY));
}

const rows = (m: readonly number[]): number[][] => [0, 1, 2, 3].map((r) => m.slice(4 * r, 4 * r + 4));

/** transform.json: the fixed → moving affine in LPS and RAS, with its convention spelled out. */
export function transformJson(r: RegistrationResult): Record<string, unknown> {
  const a = r.transform?.fixedToMoving;
  if (!a || a.m.length !== 16) {
    throw new CuriaError('INTERNAL', 'RegisterService returned no fixed_to_moving affine');
  }
  const lps = a.frame === common.CoordinateFrame.RAS ? otherFrame(a.m) : [...a.m];
  return {
    direction: 'fixed -> moving',
    convention:
      '(x_moving, y_moving, z_moving, 1) = M * (x_fixed, y_fixed, z_fixed, 1): patient millimetres, column vectors, M row by row; a pull-back map (resample the moving image at M * x to bring it onto the fixed grid)',
    deformableNote:
      'for deformable registration this is the affine initialisation only: displacement.nii.gz holds the complete transform, x_moving = x_fixed + u(x_fixed), u in LPS mm',
    lps: { frame: 'LPS (+x Left, +y Posterior, +z Superior; DICOM, ITK)', matrix: rows(lps) },
    ras: { frame: 'RAS (+x Right, +y Anterior, +z Superior; NIfTI, nibabel)', matrix: rows(otherFrame(lps)) },
  };
}

/** Mean Dice before and after per label map name, over the label values the fixed map holds. */
export function meanDice(
  overlaps: readonly register.LabelOverlap[],
): Record<string, { before: number; after: number; values: number }> {
  const out: Record<string, { before: number; after: number; values: number }> = {};
  for (const l of overlaps) {
    const m = (out[l.label] ??= { before: 0, after: 0, values: 0 });
    m.before += l.diceBefore;
    m.after += l.diceAfter;
    m.values++;
  }
  for (const m of Object.values(out)) {
    m.before /= m.values;
    m.after /= m.values;
  }
  return out;
}

/** quality.json: what was asked, the service's quality indicators, label overlaps, timings and model. */
export function qualityJson(
  r: RegistrationResult,
  options: ReturnType<typeof registerOptionsOf>,
): Record<string, unknown> {
  const s = r.summary;
  const q = s?.quality;
  const name = <E extends Record<number, string>>(e: E, v: number | undefined): string =>
    v ? (e[v] ?? String(v)).toLowerCase() : 'server default';
  return {
    request: {
      transform: name(register.TransformModel, options.transform),
      features: name(register.FeatureSet, options.features),
      workingSpacingMm: options.workingSpacingMm || 'server default',
      ...(options.backbone ? { backbone: options.backbone } : {}),
    },
    quality: q && {
      foldingFraction: q.foldingFraction,
      foldingPercent: 100 * q.foldingFraction,
      logJacobianStd: q.logJacobianStd,
      jacobianMin: q.jacobianMin,
      jacobianMax: q.jacobianMax,
      metric: register.SimilarityMetric[q.metric],
      initialSimilarity: q.initialSimilarity,
      finalSimilarity: q.finalSimilarity,
    },
    meanDice: meanDice(q?.labelOverlaps ?? []),
    labelOverlaps: (q?.labelOverlaps ?? []).map((l) => ({
      label: l.label,
      value: l.value,
      diceBefore: l.diceBefore,
      diceAfter: l.diceAfter,
      fixedVoxels: Number(l.fixedVoxels),
    })),
    timingsMs: Object.fromEntries((s?.timings ?? []).map((t) => [t.stage, Math.round(t.millis)])),
    model: s?.model
      ? {
          name: s.model.name,
          version: s.model.version,
          sha256: s.model.sha256,
          demoWeights: s.model.demoWeights,
        }
      : null,
    demoWeights: s?.model?.demoWeights ?? false,
  };
}

/**
 * The checkerboards of the fixed image's middle axial (canonical) slice: with the moving image on
 * the same world positions (no registration) and with the warped image the service returned. Each
 * image is shown through its robust intensity window, so any two modalities compare.
 */
async function checkerboards(
  fixedPath: string,
  movingPath: string,
  warped: Uint8Array,
): Promise<[Uint8Array, Uint8Array]> {
  const fixed = await openVolume({ kind: 'path', path: fixedPath });
  const [n, rowCount, colCount] = fixed.geometry.canonicalDims;
  const k = Math.floor(n / 2);
  const moving = await volumeField(await openVolume({ kind: 'path', path: movingPath }));
  // The canonical slice k as a one-slice grid: voxel (col, row) in display order.
  const slice = gridSlab({ dims: [colCount, rowCount, n], affine: fixed.geometry.canonicalAffine }, k, k + 1);
  const before: DisplaySlice = {
    width: colCount,
    height: rowCount,
    values: resampleToGrid(moving, slice).data,
  };
  const after = await volumeDisplaySlice(
    await openVolume({ kind: 'bytes', data: warped, filename: 'warped.nii.gz' }),
    k,
  );
  const windows = {
    a: intensityWindow(await volumeField(fixed), 'other'),
    b: intensityWindow(moving, 'other'),
  };
  const fixedSlice = await volumeDisplaySlice(fixed, k);
  const png = (b: DisplaySlice): Uint8Array =>
    renderSlicePng(checkerboard(fixedSlice, b, windows), { window: [0.5, 1] });
  return [png(before), png(after)];
}

/** Human-readable report lines. */
export function registrationText(outcome: RegisterOutcome): string[] {
  const { quality: j, files, wallMs } = outcome;
  const q = outcome.result.summary?.quality;
  const model = outcome.result.summary?.model;
  const lines: string[] = [];
  if (model) {
    lines.push(
      `features from ${model.name}@${model.version}${model.demoWeights ? '  (DEMO WEIGHTS: integration testing only, not Curia outputs)' : ''}`,
    );
  }
  if (q) {
    lines.push(
      `similarity (${register.SimilarityMetric[q.metric]}) ${q.initialSimilarity.toFixed(3)} -> ${q.finalSimilarity.toFixed(3)}`,
      `folding ${(100 * q.foldingFraction).toFixed(3)} %, SDlogJ ${q.logJacobianStd.toFixed(3)}, Jacobian ${q.jacobianMin.toFixed(2)}..${q.jacobianMax.toFixed(2)}`,
    );
  }
  for (const [label, d] of Object.entries(j.meanDice as ReturnType<typeof meanDice>)) {
    lines.push(
      `Dice '${label}' (mean of ${d.values} labels) ${d.before.toFixed(3)} -> ${d.after.toFixed(3)}`,
    );
  }
  const written = [
    files.displacement,
    ...(files.inverseDisplacement ? [files.inverseDisplacement] : []),
    ...Object.values(files.warped),
    files.transform,
    files.quality,
    files.checkerboardBefore,
    files.checkerboardAfter,
  ];
  lines.push(`wrote ${written.map((f) => basename(f)).join(', ')} in ${dirname(files.quality)}`);
  const server = (j.timingsMs as Record<string, number>).total;
  lines.push(
    `time ${(wallMs / 1000).toFixed(1)} s${server !== undefined ? ` (server ${(server / 1000).toFixed(1)} s)` : ''}`,
  );
  return lines;
}

/** The JSON document `curia register --json` prints: quality.json plus where every file went. */
export function registrationJson(outcome: RegisterOutcome): Record<string, unknown> {
  return { ...outcome.quality, files: outcome.files, wallMs: Math.round(outcome.wallMs) };
}

/** Registers `curia register`. */
export function registerRegister(program: Command): void {
  addConnectionOptions(program.command('register'))
    .description(
      'Register a moving volume onto a fixed one through RegisterService; write the field, warped images and labels, quality and checkerboards',
    )
    .requiredOption('--fixed <file|dir>', 'the reference volume: file.nii[.gz] or a DICOM series directory')
    .requiredOption('--moving <file|dir>', 'the volume to align onto --fixed')
    .requiredOption('--out-dir <dir>', 'directory for every output (created)')
    .option(
      '--moving-labels <[name=]path>',
      'a label map on the moving grid, warped with nearest neighbour (repeatable; name: the file name without .nii[.gz])',
      collect,
    )
    .option(
      '--fixed-labels <[name=]path>',
      'a label map on the fixed grid: Dice per label against the moving label map of the same name (repeatable)',
      collect,
    )
    .option('--fixed-mask <path>', 'only voxels where this fixed-grid mask is nonzero drive the similarity')
    .option(
      '--features <mind|curia|hybrid>',
      "features the similarity is computed on (default: the server's, MIND)",
    )
    .option('--transform <rigid|affine|deformable>', "transform family (default: the server's, deformable)")
    .option(
      '--working-spacing <mm>',
      "isotropic working grid spacing (default: the server's: 3 mm on CPU, 2 mm on CUDA)",
    )
    .option(
      '--fixed-modality <ct|mr|pet|cbct|other>',
      'modality of --fixed (default: DICOM Modality, else other)',
    )
    .option('--moving-modality <ct|mr|pet|cbct|other>', 'modality of --moving')
    .option('--inverse', 'also write inverse_displacement.nii.gz')
    .option('--backbone <name[@version]>', 'backbone of curia/hybrid features (default: the server default)')
    .option('--target <host:port>', 'RegisterService address', localTarget('register'))
    .option('--study-id <id>', 'opaque study id for logs (never PHI)')
    .option('--deadline <seconds>', 'deadline for the whole call', '600')
    .option('--json', 'print one JSON document (quality.json plus where each file went)')
    .addHelpText(
      'after',
      [
        '',
        'Writes into --out-dir: displacement.nii.gz (ITK/ANTs displacement field on the fixed grid, LPS mm,',
        'x_moving = x_fixed + u(x_fixed)), [inverse_displacement.nii.gz], warped_moving.nii.gz and warped_NAME.nii.gz',
        'per moving label map, transform.json (fixed -> moving affine in LPS and RAS), quality.json and',
        "checkerboard_before.png / checkerboard_after.png (the fixed image's middle axial slice in 16 px tiles",
        'with the moving image before registration and the warped image after).',
        'Label maps pair by name: --moving-labels organs=m.nii.gz --fixed-labels organs=f.nii.gz.',
      ].join('\n'),
    )
    .action(async (opts: RegisterCommandOptions) => {
      const progress = stderrProgressBar(!opts.json);
      try {
        const outcome = await registerAction(opts, progress.onProgress);
        progress.end();
        process.stdout.write(
          opts.json
            ? `${JSON.stringify(registrationJson(outcome), null, 2)}\n`
            : `${registrationText(outcome).join('\n')}\n`,
        );
      } catch (err) {
        progress.end();
        failCommand('register', err, { withCode: true });
      }
    });
}
