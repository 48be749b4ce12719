import { mkdir, writeFile } from 'node:fs/promises';
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
import { buildDinov2Graph, DEFAULT_ATTENTION, type AttentionImpl } from '../onnx/dinov2-graph.js';
import { writeModel } from '../onnx/model-writer.js';
import { randomWeights } from '../random-weights.js';
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
  /** Bundle version string (default '1'). */
  readonly version?: string;
  /** Weight/compute precision (default f32). f16 targets GPUs; on CPU it runs but slower and looser. */
  readonly dtype?: ComputeDType;
  /** Self-attention implementation in the graph (default {@link DEFAULT_ATTENTION}). */
  readonly attention?: AttentionImpl;
  /** Graph input/output precision (default f32). */
  readonly ioDtype?: ComputeDType;
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
  await mkdir(dir, { recursive: true });
  const parts = buildDinov2Graph(arch, weights, {
    dtype,
    ioDtype,
    attention: opts.attention ?? DEFAULT_ATTENTION,
    name: meta.name,
    producerVersion: BUILDER_VERSION,
  });
  if (opts.signal?.aborted) throw new CuriaError('CANCELLED', 'bundle build cancelled');
  let written: { bytes: number; sha256: string };
  try {
    written = await writeModel(join(dir, MODEL_FILE), parts);
  } catch (e) {
    if (e instanceof RangeError) throw new CuriaError('RESOURCE_EXHAUSTED', e.message, { cause: e });
    throw e;
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
    attention: opts.attention ?? DEFAULT_ATTENTION,
    sha256: written.sha256,
    model_bytes: written.bytes,
    provenance: meta.provenance,
    demo_weights: meta.demo,
  };
  await writeFile(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return { dir, manifest };
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
      version: opts.version ?? '1',
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
      version: opts.version ?? '1',
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
