import { stat } from 'node:fs/promises';

import type { Command } from 'commander';

import { CuriaError } from '@curia/errors';
import {
  CURIA_DEFAULT_PREPROCESS_SPEC,
  preprocessToTensor,
  writePreprocessed,
  type SliceSelection,
} from '@curia/volume';

/** Options of `curia preprocess`. */
export interface PreprocessCommandOptions {
  readonly slices?: string;
  readonly every?: string;
  readonly central?: string;
  readonly clipBelowAir?: boolean;
  readonly out: string;
}

/** Result of {@link preprocessAction}, for the one-line summary. */
export interface PreprocessCommandResult {
  readonly slices: number;
  readonly out: string;
}

function positiveInt(flag: string, v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < 1) {
    throw new CuriaError('INVALID_ARGUMENT', `${flag} must be a positive integer, got '${v}'`);
  }
  return n;
}

/** Parses the mutually exclusive selection flags (none = every slice). */
export function parseSelection(
  o: Pick<PreprocessCommandOptions, 'slices' | 'every' | 'central'>,
): SliceSelection {
  const given = [o.slices, o.every, o.central].filter((v) => v !== undefined).length;
  if (given > 1) throw new CuriaError('INVALID_ARGUMENT', 'use only one of --slices, --every, --central');
  if (o.slices !== undefined) {
    const indices = o.slices.split(',').map((s) => {
      const t = s.trim();
      const n = Number(t);
      if (!/^\d+$/.test(t) || !Number.isSafeInteger(n)) {
        throw new CuriaError('INVALID_ARGUMENT', `--slices must be comma-separated indices >= 0, got '${s}'`);
      }
      return n;
    });
    return { kind: 'indices', indices: [...new Set(indices)].sort((a, b) => a - b) };
  }
  if (o.every !== undefined) return { kind: 'every', step: positiveInt('--every', o.every) };
  if (o.central !== undefined) return { kind: 'central', count: positiveInt('--central', o.central) };
  return { kind: 'all' };
}

/**
 * `curia preprocess <input> --out file.safetensors`: preprocesses a NIfTI file or a DICOM
 * directory exactly as the service does and writes `pixel_values` (k, 1, 512, 512). Throws a
 * CuriaError with a one-line reason on bad input.
 */
export async function preprocessAction(
  input: string,
  o: PreprocessCommandOptions,
  signal?: AbortSignal,
): Promise<PreprocessCommandResult> {
  if (!o.out) throw new CuriaError('INVALID_ARGUMENT', '--out <file.safetensors> is required');
  try {
    await stat(input);
  } catch {
    throw new CuriaError('NOT_FOUND', `input '${input}' does not exist or is not readable`);
  }
  const result = await preprocessToTensor(
    { kind: 'path', path: input },
    {
      selection: parseSelection(o),
      spec: { ...CURIA_DEFAULT_PREPROCESS_SPEC, clipBelowAir: o.clipBelowAir ?? false },
      ...(signal ? { signal } : {}),
    },
  );
  await writePreprocessed(o.out, result);
  return { slices: result.indices.length, out: o.out };
}

/** Registers `curia preprocess`. */
export function registerPreprocess(program: Command): void {
  program
    .command('preprocess')
    .description('Preprocess a NIfTI file or DICOM directory into Curia model-ready slices (safetensors)')
    .argument('<input>', 'file.nii[.gz] or a directory holding one DICOM series')
    .option('--slices <list>', 'comma-separated canonical slice indices, e.g. 0,10,20')
    .option('--every <k>', 'every k-th canonical slice')
    .option('--central <n>', 'the n central slices')
    .option('--clip-below-air', 'clamp values below -1000 HU after resizing')
    .requiredOption('--out <file>', 'output .safetensors path')
    .action(async (input: string, opts: PreprocessCommandOptions) => {
      const r = await preprocessAction(input, opts);
      process.stdout.write(`wrote ${r.slices} slices to ${r.out}\n`);
    });
}
