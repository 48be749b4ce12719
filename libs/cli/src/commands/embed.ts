import type { Command } from 'commander';

import { embedFile, type EmbedFileResult } from '@curia/model';

/** Options of `curia embed`. */
export interface EmbedOptions {
  /** Bundle directory. */
  readonly model: string;
  /** safetensors with `pixel_values` (B, 1, S, S). */
  readonly in: string;
  readonly out: string;
  readonly batch?: string;
  readonly signal?: AbortSignal;
}

/** Runs the backbone over a safetensors file (see `embedFile`). */
export async function embedAction(opts: EmbedOptions): Promise<EmbedFileResult> {
  const batchSize = opts.batch === undefined ? 8 : Number(opts.batch);
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > 64) {
    throw new Error(`--batch must be an integer in [1, 64] (got ${opts.batch})`);
  }
  return embedFile(opts.model, opts.in, opts.out, {
    batchSize,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
}

/** Registers `curia embed`. */
export function registerEmbed(program: Command): void {
  program
    .command('embed')
    .description(
      'embed preprocessed slices offline: writes last_hidden_state, pooler_output and last_block_prenorm',
    )
    .requiredOption('--model <bundle-dir>', 'model bundle directory (curia model build)')
    .requiredOption('--in <file>', 'input safetensors holding pixel_values (B, 1, S, S)')
    .requiredOption('--out <file>', 'output safetensors')
    .option('--batch <n>', 'slices per inference batch', '8')
    .action(async (opts: EmbedOptions) => {
      const r = await embedAction(opts);
      process.stdout.write(
        `embedded ${r.slices} slices (${r.tokens} tokens × ${r.hidden}) in ${(r.millis / 1000).toFixed(2)} s → ${opts.out}\n`,
      );
    });
}
