import type { Command } from 'commander';

import { importHeadCommand, runHeadFile, type ImportSummary, type RunHeadFileResult } from '@curia/heads';

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

/** Registers `curia head import` and `curia head run`. */
export function registerHead(program: Command): void {
  const head = program.command('head').description('Import and run task heads');
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
}
