import { createHash } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';

import { CuriaError } from '@curia/errors';

import {
  numTokens,
  presetArchitecture,
  type Architecture,
  type DinoWeights,
  type PresetName,
} from '../architecture.js';
import { architectureFromHfConfig, loadHfWeights, readHfConfig } from '../hf-checkpoint.js';
import type { ComputeDType } from '../onnx/graph-builder.js';
import {
  buildDinov2Graph,
  DEFAULT_ATTENTION,
  DEFAULT_INT8_OPS,
  type AttentionImpl,
  type Int8LinearOps,
} from '../onnx/dinov2-graph.js';
import { encodeModel, writeModel, type ModelParts } from '../onnx/model-writer.js';
import { randomWeights } from '../random-weights.js';
import { calibrationSet, measureFidelity, type FidelityReport } from './fidelity.js';
import {
  BUILDER_VERSION,
  BUNDLE_SCHEMA_VERSION,
  MANIFEST_FILE,
  MODEL_FILE,
  type BundleManifest,
} from './manifest.js';

/** Options shared by both bundle builders. */
export interface BuildBundleOptions {
  /** Bundle name (default: checkpoint folder name, or `<preset>-demo` for random bundles). */
  readonly name?: string;
  /** Bundle version string (default '1'); a quantized bundle appends '-int8' (see {@link bundleVersion}). */
  readonly version?: string;
  /** Weight/compute precision (default f32). f16 targets GPUs; on CPU it runs but slower and looser. */
  readonly dtype?: ComputeDType;
  /** Self-attention implementation in the graph (default {@link DEFAULT_ATTENTION}). */
  readonly attention?: AttentionImpl;
  /** Graph input/output precision (default f32). */
  readonly ioDtype?: ComputeDType;
  /**
   * 'int8': quantize the ViT's linear layers (see `Dinov2GraphOptions.quantize`); the manifest then
   * records the F32 model it derives from and the fidelity measured against it on calibration
   * slices, and a bundle below {@link FIDELITY_THRESHOLDS} is refused (FAILED_PRECONDITION).
   */
  readonly quantize?: 'int8';
  /** Ops of quantized linear layers (default {@link DEFAULT_INT8_OPS}). */
  readonly int8Ops?: Int8LinearOps;
  /** Preprocessing spec: clamp values below −1000 HU (default false, as Curia). */
  readonly clipBelowAir?: boolean;
  readonly signal?: AbortSignal;
}

/** A bundle written to disk. */
export interface BuiltBundle {
  readonly dir: string;
  readonly manifest: BundleManifest;
}

/** Identity and provenance of a bundle, as recorded in its manifest. */
export interface BundleMeta {
  readonly name: string;
  readonly version: string;
  readonly provenance: BundleManifest['provenance'];
  readonly demo: boolean;
}

/**
 * Builds the graph of `arch` with `weights` and writes `model.onnx`, then `bundle.json` (last, so a
 * half-written bundle has no manifest). The low-level path behind both public builders.
 */
export async function writeBundle(
  outDir: string,
  arch: Architecture,
  weights: DinoWeights,
  meta: BundleMeta,
  opts: BuildBundleOptions = {},
): Promise<BuiltBundle> {
  const dir = resolve(outDir);
  const dtype = opts.dtype ?? 'f32';
  const ioDtype = opts.ioDtype ?? 'f32';
  const attention = opts.attention ?? DEFAULT_ATTENTION;
  if (opts.quantize && (dtype !== 'f32' || ioDtype !== 'f32')) {
    throw new CuriaError('INVALID_ARGUMENT', 'int8 quantization needs dtype and io_dtype f32');
  }
  await mkdir(dir, { recursive: true });
  const graphOf = (quantize: boolean): ModelParts =>
    buildDinov2Graph(arch, weights, {
      dtype,
      ioDtype,
      attention,
      name: meta.name,
      producerVersion: BUILDER_VERSION,
      ...(quantize ? { quantize: 'int8' as const, int8Ops: opts.int8Ops ?? DEFAULT_INT8_OPS } : {}),
    });
  // A quantized bundle derives from the F32 model the same options build without quantization.
  const source = opts.quantize ? encodeModel(graphOf(false)) : null;
  const parts = graphOf(opts.quantize === 'int8');
  if (opts.signal?.aborted) throw new CuriaError('CANCELLED', 'bundle build cancelled');
  const modelPath = join(dir, MODEL_FILE);
  let written: { bytes: number; sha256: string };
  try {
    written = await writeModel(modelPath, parts);
  } catch (e) {
    if (e instanceof RangeError) throw new CuriaError('RESOURCE_EXHAUSTED', e.message, { cause: e });
    throw e;
  }
  let quantization: BundleManifest['quantization'];
  if (source) {
    const sourceSha = createHash('sha256').update(source).digest('hex');
    let fidelity: FidelityReport;
    try {
      fidelity = await measureFidelity(source, modelPath, arch, await calibrationSet(arch));
    } catch (e) {
      await rm(modelPath, { force: true });
      throw e;
    }
    quantization = {
      scheme: 'int8',
      layers: 'vit_linear',
      weights: 'symmetric_per_output_channel',
      activations: 'dynamic_per_tensor',
      ops: opts.int8Ops ?? DEFAULT_INT8_OPS,
      source_sha256: sourceSha,
      fidelity,
    };
  }
  const t = numTokens(arch);
  const d = arch.hidden_size;
  const manifest: BundleManifest = {
    schema_version: BUNDLE_SCHEMA_VERSION,
    name: meta.name,
    version: meta.version,
    architecture: { ...arch },
    preprocess: {
      image_size: arch.image_size,
      clip_below_air: opts.clipBelowAir ?? false,
      normalize: 'zscore_unbiased',
      resize: 'bicubic_antialias',
    },
    outputs: [
      { name: 'last_hidden_state', shape: ['batch', t, d] },
      { name: 'pooler_output', shape: ['batch', d] },
      { name: 'last_block_prenorm', shape: ['batch', t, d] },
    ],
    dtype,
    io_dtype: ioDtype,
    attention,
    sha256: written.sha256,
    feature_space: quantization?.source_sha256 ?? written.sha256,
    ...(quantization ? { quantization } : {}),
    model_bytes: written.bytes,
    provenance: meta.provenance,
    demo_weights: meta.demo,
  };
  await writeFile(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return { dir, manifest };
}

/**
 * Version of a bundle: `opts.version` (default '1'), suffixed '-int8' for an INT8 bundle — which
 * keeps the name of the F32 bundle it derives from (so both build the same graph name and its
 * `source_sha256` is that F32 bundle's sha256) and so needs another version to be served beside it.
 */
function bundleVersion(opts: BuildBundleOptions): string {
  const v = opts.version ?? '1';
  const suffix = opts.quantize ? `-${opts.quantize}` : '';
  return v.endsWith(suffix) ? v : `${v}${suffix}`;
}

/** Options of {@link buildBundleFromHf}. */
export interface HfBundleOptions extends BuildBundleOptions {
  /** HF backbone config to use instead of `<hfDir>/config.json` (e.g. for a Curia head checkpoint). */
  readonly hfConfig?: Record<string, unknown>;
  /**
   * Safetensors file to read instead of the checkpoint in `<hfDir>` (`model.safetensors`, or a
   * sharded `model.safetensors.index.json` + shards) — e.g. a Curia head's `model.safetensors`,
   * whose backbone copy lives under `dino.*`.
   */
  readonly weightsFile?: string;
}

/**
 * Imports an HF DINOv2 checkpoint folder (`config.json` + `model.safetensors`, or the sharded
 * `model.safetensors.index.json` + `model-0000N-of-0000M.safetensors`) into a bundle at
 * `outDir`. Validates every expected tensor and shape (FAILED_PRECONDITION / INVALID_ARGUMENT
 * naming the tensor). Real weights: `demo_weights` is false.
 */
export async function buildBundleFromHf(
  hfDir: string,
  outDir: string,
  opts: HfBundleOptions = {},
): Promise<BuiltBundle> {
  const cfg = opts.hfConfig ?? (await readHfConfig(hfDir));
  const arch = architectureFromHfConfig(cfg);
  const weights = await loadHfWeights(opts.weightsFile ?? hfDir, arch, opts.signal);
  return writeBundle(
    outDir,
    arch,
    weights,
    {
      name: opts.name ?? basename(resolve(hfDir)),
      version: bundleVersion(opts),
      provenance: {
        source: 'hf',
        hf_config: cfg,
        created_at: new Date().toISOString(),
        builder_version: BUILDER_VERSION,
      },
      demo: false,
    },
    opts,
  );
}

/** Options of {@link buildRandomBundle}. */
export interface RandomBundleOptions extends BuildBundleOptions {
  readonly preset: PresetName;
  /** PRNG seed (default 0). Same seed → byte-identical model.onnx. */
  readonly seed?: number;
  /** Architecture tweaks on top of the preset (e.g. `{ num_register_tokens: 4 }`, `{ ffn: 'swiglu' }`). */
  readonly overrides?: Partial<Architecture>;
}

/** Default bundle name of a preset: `curia-demo` for the demo preset, `<preset>-demo` otherwise. */
export function presetBundleName(preset: PresetName): string {
  return preset === 'demo' || preset === 'small-demo' ? 'curia-demo' : `${preset}-demo`;
}

/**
 * Builds a bundle with seeded random weights in the shape of a preset. Always labelled
 * `demo_weights: true` and named with a `-demo` suffix: its embeddings carry no medical meaning.
 */
export async function buildRandomBundle(outDir: string, opts: RandomBundleOptions): Promise<BuiltBundle> {
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new CuriaError('INVALID_ARGUMENT', 'seed must be an integer in [0, 2^32)');
  }
  const arch = presetArchitecture(opts.preset, opts.overrides);
  const weights = randomWeights(arch, { seed });
  const name = opts.name ?? presetBundleName(opts.preset);
  return writeBundle(
    outDir,
    arch,
    weights,
    {
      name: name.endsWith('-demo') ? name : `${name}-demo`,
      version: bundleVersion(opts),
      provenance: {
        source: 'random',
        preset: opts.preset,
        seed,
        created_at: new Date().toISOString(),
        builder_version: BUILDER_VERSION,
      },
      demo: true,
    },
    opts,
  );
}
