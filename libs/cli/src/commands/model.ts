import type { Command } from 'commander';

import { buildBundleFromHf, buildRandomBundle, type BuiltBundle, type PresetName } from '@curia/model';

const PRESETS: readonly PresetName[] = ['tiny', 'demo', 'curia-b', 'curia-l'];

/** Options of `curia model build`. */
export interface ModelBuildOptions {
  /** HF DINOv2 checkpoint folder (config.json + model.safetensors). */
  readonly hf?: string;
  /** Build seeded random (demo) weights instead. */
  readonly random?: boolean;
  readonly preset?: string;
  readonly seed?: string;
  /** Weight and compute precision: f32 (default) or f16 (for GPUs). */
  readonly dtype?: string;
  readonly out: string;
  readonly signal?: AbortSignal;
}

/** Validates the options and builds the bundle; returns what was written. */
export async function modelBuild(opts: ModelBuildOptions): Promise<BuiltBundle> {
  if (Boolean(opts.hf) === Boolean(opts.random)) {
    throw new Error('give exactly one of --hf <dir> or --random --preset <name>');
  }
  if (opts.dtype !== undefined && opts.dtype !== 'f32' && opts.dtype !== 'f16') {
    throw new Error(`--dtype must be f32 or f16 (got ${opts.dtype})`);
  }
  const dtype: 'f32' | 'f16' | undefined = opts.dtype;
  const common = {
    ...(dtype ? { dtype } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
  if (opts.hf) return buildBundleFromHf(opts.hf, opts.out, common);
  const preset = opts.preset as PresetName | undefined;
  if (!preset || !PRESETS.includes(preset)) {
    throw new Error(`--random needs --preset <${PRESETS.join('|')}> (got ${opts.preset ?? 'none'})`);
  }
  const seed = opts.seed === undefined ? 0 : Number(opts.seed);
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new Error(`--seed must be an integer in [0, 2^32) (got ${opts.seed})`);
  }
  return buildRandomBundle(opts.out, { preset, seed, ...common });
}

/** Registers `curia model build`. */
export function registerModel(program: Command): void {
  const model = program.command('model').description('model bundles (ONNX backbone + manifest)');
  model
    .command('build')
    .description('build a bundle from a Hugging Face DINOv2 checkpoint or with random demo weights')
    .option(
      '--hf <dir>',
      'HF checkpoint folder (config.json + model.safetensors, or model.safetensors.index.json + shards)',
    )
    .option('--random', 'seeded random weights (labelled demo_weights, never clinical)')
    .option('--preset <name>', `architecture preset for --random: ${PRESETS.join(', ')}`)
    .option('--seed <n>', 'PRNG seed for --random', '0')
    .option('--dtype <f32|f16>', 'weight and compute precision (f16 for GPUs)')
    .requiredOption('--out <dir>', 'bundle directory to write')
    .action(async (opts: ModelBuildOptions) => {
      const t0 = performance.now();
      const { dir, manifest } = await modelBuild(opts);
      const a = manifest.architecture;
      process.stdout.write(
        `built ${manifest.name}@${manifest.version} (${a.hidden_size}×${a.num_layers}, ${a.ffn}${manifest.demo_weights ? ', DEMO WEIGHTS' : ''}) ` +
          `sha256 ${manifest.sha256.slice(0, 12)}… in ${((performance.now() - t0) / 1000).toFixed(1)} s → ${dir}\n`,
      );
    });
}
