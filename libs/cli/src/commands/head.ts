import type { Command } from 'commander';

import { createCuriaClient, heads, segment } from '@curia/client';
import { importHeadCommand, runHeadFile, type ImportSummary, type RunHeadFileResult } from '@curia/heads';
import { localTarget } from '@curia/kit';

import {
  failCommand,
  addConnectionOptions,
  clientOptions,
  openChannel,
  type ConnectionOptions,
} from './shared.js';

/** Options of `curia head import`. */
export interface HeadImportOptions {
  readonly out: string;
  /** 2D heads: `cls` (default) or `mask` (mask-pooled input). */
  readonly input?: 'cls' | 'mask';
  readonly name?: string;
}

/** `curia head import <dir> --out <bundle>`: converts a Curia-format head folder to a native bundle. */
export async function headImportAction(dir: string, opts: HeadImportOptions): Promise<ImportSummary> {
  const s = await importHeadCommand(dir, opts.out, {
    ...(opts.input ? { input: opts.input } : {}),
    ...(opts.name ? { name: opts.name } : {}),
  });
  process.stdout.write(
    `imported ${s.name}: kind ${s.kind}, task ${s.task}, ${s.labels.length} output(s), ` +
      `slices ${JSON.stringify(s.requirements.slices)}, mask ${s.requirements.mask} -> ${s.outDir}\n`,
  );
  return s;
}

/** Options of `curia head run`. */
export interface HeadRunOptions {
  readonly head: string;
  readonly model: string;
  readonly in: string;
  readonly out: string;
}

/** `curia head run`: embeds `pixel_values` with the model bundle, runs the head, writes the outputs. */
export async function headRunAction(opts: HeadRunOptions, signal?: AbortSignal): Promise<RunHeadFileResult> {
  const r = await runHeadFile({
    headDir: opts.head,
    modelBundleDir: opts.model,
    inPath: opts.in,
    outPath: opts.out,
    ...(signal ? { signal } : {}),
  });
  process.stdout.write(
    `${r.head}: ${r.slices} slice(s) -> ${r.output.rows} row(s) x ${r.output.outputs} output(s) written to ${opts.out}\n`,
  );
  return r;
}

/** Options of `curia head promote`. */
export interface HeadPromoteOptions extends ConnectionOptions {
  /** A segmentation head (SegmentService) instead of a task head (HeadsService). */
  readonly segment?: boolean;
  /** The service's address; default the local one of HeadsService or SegmentService. */
  readonly target?: string;
  readonly json?: boolean;
}

/** What `curia head promote` did. */
export interface HeadPromoteResult {
  readonly name: string;
  readonly version: string;
  /** The version the unversioned name resolved to before ('' when unknown). */
  readonly previous: string;
}

/**
 * `curia head promote NAME VERSION`: makes `NAME@VERSION` what the unversioned name resolves to,
 * through HeadsService.PromoteHead (or SegmentService.PromoteHead with `segment`), on every replica.
 */
export async function headPromoteAction(
  name: string,
  version: string,
  opts: HeadPromoteOptions = {},
): Promise<HeadPromoteResult> {
  const target = opts.target ?? localTarget(opts.segment ? 'segment' : 'heads');
  const channel = openChannel(target, opts);
  let result: HeadPromoteResult;
  try {
    const options = clientOptions(opts);
    // SegmentService answers a SegmentHead (its HeadInfo under `info`), HeadsService the HeadInfo.
    const r = opts.segment
      ? await createCuriaClient(segment.SegmentServiceDefinition, channel, options)
          .promoteHead({ name, version })
          .then((x) => ({ head: x.head?.info, previous: x.previousVersion }))
      : await createCuriaClient(heads.HeadsServiceDefinition, channel, options)
          .promoteHead({ name, version })
          .then((x) => ({ head: x.head, previous: x.previousVersion }));
    result = { name: r.head?.name ?? name, version: r.head?.version ?? version, previous: r.previous };
  } finally {
    channel.close();
  }
  process.stdout.write(
    opts.json
      ? `${JSON.stringify(result)}\n`
      : result.previous === result.version
        ? `${result.name}@${result.version} was already promoted\n`
        : `promoted ${result.name}@${result.version} (was ${result.previous ? `${result.name}@${result.previous}` : 'none'}): '${result.name}' now resolves to it\n`,
  );
  return result;
}

/** Registers `curia head import`, `curia head run` and `curia head promote` (also as `curia heads …`). */
export function registerHead(program: Command): void {
  const head = program.command('head').alias('heads').description('Import, run and promote task heads');
  head
    .command('import <dir>')
    .description(
      'Convert a Curia-format head folder (config.json + model.safetensors) to a native head bundle',
    )
    .requiredOption('--out <head-bundle>', 'output bundle directory')
    .option('--input <kind>', '2D heads: cls or mask (mask-pooled input)', 'cls')
    .option('--name <name>', 'head name (default: folder name)')
    .action(async (dir: string, opts: { out: string; input: string; name?: string }) => {
      if (opts.input !== 'cls' && opts.input !== 'mask') {
        throw new Error(`--input must be cls or mask (got '${opts.input}')`);
      }
      await headImportAction(dir, {
        out: opts.out,
        input: opts.input,
        ...(opts.name ? { name: opts.name } : {}),
      });
    });
  head
    .command('run')
    .description('Embed pixel_values from a safetensors file, run a head bundle and write its outputs')
    .requiredOption('--head <head-bundle>', 'native head bundle directory')
    .requiredOption('--model <model-bundle>', 'model bundle directory')
    .requiredOption('--in <in.safetensors>', 'input with pixel_values (B,1,H,W) and optional mask')
    .requiredOption('--out <out.safetensors>', 'output file')
    .action(async (opts: HeadRunOptions) => {
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      try {
        await headRunAction(opts, ac.signal);
      } finally {
        process.off('SIGINT', stop);
      }
    });
  addConnectionOptions(head.command('promote <name> <version>'))
    .description(
      'Make NAME@VERSION what the unversioned head name resolves to, on every replica (HeadsService.PromoteHead; ' +
        'an admin operation). A Fit adds a version without moving the name unless it was asked to promote.',
    )
    .option('--segment', 'a segmentation head (SegmentService) instead of a task head (HeadsService)')
    .option(
      '--target <host:port>',
      'service address (default: the local HeadsService, or SegmentService with --segment)',
    )
    .option('--json', 'print one JSON document')
    .action(async (name: string, version: string, opts: HeadPromoteOptions) => {
      try {
        await headPromoteAction(name, version, opts);
      } catch (err) {
        failCommand('head promote', err);
      }
    });
}
