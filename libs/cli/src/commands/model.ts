import type { Command } from 'commander';

import {
  buildBundleFromHf,
  buildRandomBundle,
  featureSpaceOf,
  loadBundle,
  type BuiltBundle,
  type BundleManifest,
  type PresetName,
} from '@curia/model';

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
  /** Bundle name (default: the checkpoint folder's name, or the preset's demo name). */
  readonly name?: string;
  /** Bundle version (default 1; an INT8 bundle appends -int8). */
  readonly version?: string;
  /** 'int8': quantize the ViT's linear layers, with build-time fidelity against F32. */
  readonly quantize?: string;
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
  if (opts.quantize !== undefined && opts.quantize !== 'int8') {
    throw new Error(`--quantize must be int8 (got ${opts.quantize})`);
  }
  if (opts.quantize && dtype === 'f16') throw new Error('--quantize int8 needs --dtype f32');
  const common = {
    ...(dtype ? { dtype } : {}),
    ...(opts.quantize ? { quantize: 'int8' as const } : {}),
    ...(opts.name ? { name: opts.name } : {}),
    ...(opts.version ? { version: opts.version } : {}),
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

/** The lines `curia model info` prints for a manifest. */
export function describeManifest(dir: string, m: BundleManifest): string[] {
  const a = m.architecture;
  const lines = [
    `bundle        ${dir}`,
    `model         ${m.name}@${m.version}${m.demo_weights ? ' (DEMO WEIGHTS, not clinical)' : ''}`,
    `architecture  hidden ${a.hidden_size}, ${a.num_layers} layers, ${a.num_heads} heads, patch ${a.patch_size}, image ${a.image_size}, ${a.num_channels} channel(s), ${a.ffn}, ${a.num_register_tokens} registers`,
    `precision     ${m.quantization ? 'int8 linear layers (dynamic activations), float elsewhere' : m.dtype} (io ${m.io_dtype}), attention ${m.attention}`,
    `sha256        ${m.sha256}`,
    `feature space ${featureSpaceOf(m)}`,
    `source        ${m.provenance.source}${m.provenance.preset ? ` preset ${m.provenance.preset} seed ${m.provenance.seed ?? 0}` : ''}, built ${m.provenance.created_at} by builder ${m.provenance.builder_version}`,
  ];
  const q = m.quantization;
  if (q) {
    const f = q.fidelity;
    lines.push(
      `quantization  ${q.scheme}: weights ${q.weights}, activations ${q.activations}, layers ${q.layers}, ops ${q.ops}`,
      `derived from  F32 model sha256 ${q.source_sha256}`,
      `fidelity      on ${f.slices} ${f.calibration === 'shared_ct' ? 'shared CT' : 'SYNTHETIC (no real CT at build)'} slices (${f.source}): ` +
        `CLS cosine min ${f.cls_cosine_min.toFixed(5)} (≥ ${f.thresholds.cls_cosine_min}), patch cosine mean ${f.patch_cosine_mean.toFixed(5)} (≥ ${f.thresholds.patch_cosine_mean}), max |diff| ${f.max_abs_diff.toExponential(2)}` +
        (f.host_int8_features
          ? `; build host INT8 features: ${f.host_int8_features.join(', ') || 'none'}`
          : ''),
    );
  }
  return lines;
}

/** Registers `curia model build` and `curia model info`. */
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
    .option(
      '--quantize <int8>',
      'INT8 linear layers (per-channel weights, dynamic activations); refused below the fidelity thresholds',
    )
    .option(
      '--name <name>',
      "bundle name (default: the checkpoint folder's name; an INT8 bundle takes its F32 bundle's)",
    )
    .option('--version <v>', 'bundle version (default 1; --quantize int8 appends -int8)')
    .requiredOption('--out <dir>', 'bundle directory to write')
    .action(async (opts: ModelBuildOptions) => {
      const t0 = performance.now();
      const { dir, manifest } = await modelBuild(opts);
      const a = manifest.architecture;
      process.stdout.write(
        `built ${manifest.name}@${manifest.version} (${a.hidden_size}×${a.num_layers}, ${a.ffn}${manifest.quantization ? ', INT8' : ''}${manifest.demo_weights ? ', DEMO WEIGHTS' : ''}) ` +
          `sha256 ${manifest.sha256.slice(0, 12)}… in ${((performance.now() - t0) / 1000).toFixed(1)} s → ${dir}\n`,
      );
      const f = manifest.quantization?.fidelity;
      if (f) {
        process.stdout.write(
          `fidelity vs F32 on ${f.slices} ${f.calibration === 'shared_ct' ? 'shared CT' : 'synthetic'} slices: CLS cosine min ${f.cls_cosine_min.toFixed(5)}, ` +
            `patch cosine mean ${f.patch_cosine_mean.toFixed(5)}, max |diff| ${f.max_abs_diff.toExponential(2)}\n`,
        );
      }
    });
  model
    .command('info')
    .description(
      "print a bundle's manifest: identity, architecture, precision, feature space, quantization and fidelity",
    )
    .argument('<bundle>', 'bundle directory')
    .action(async (bundle: string) => {
      const { dir, manifest } = await loadBundle(bundle, { verifySha256: false });
      process.stdout.write(`${describeManifest(dir, manifest).join('\n')}\n`);
    });
}
