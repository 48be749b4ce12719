import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { CuriaError } from '@curia/errors';
import { SafetensorsFile, toFloat32, type RawTensor, type SafetensorsEntry } from '@curia/tensors';

import {
  expectedParameters,
  validateArchitecture,
  type Architecture,
  type DinoWeights,
} from './architecture.js';

/** Backbone parameter-name prefixes accepted in checkpoints (plain HF, wrapped models, Curia heads). */
export const HF_PREFIXES = ['', 'dinov2.', 'dino.'] as const;

function num(cfg: Record<string, unknown>, key: string, fallback: number): number {
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new CuriaError('INVALID_ARGUMENT', `config.json: '${key}' must be a number`);
  }
  return v;
}

function bool(cfg: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'boolean')
    throw new CuriaError('INVALID_ARGUMENT', `config.json: '${key}' must be a boolean`);
  return v;
}

/**
 * Maps an HF `config.json` (model_type `dinov2` or `dinov2_with_registers`) to an
 * {@link Architecture}. Missing keys take HF's defaults. Throws INVALID_ARGUMENT on bad values and
 * UNIMPLEMENTED on features the graph builder does not cover (non-GELU MLP activations, list sizes).
 */
export function architectureFromHfConfig(cfg: Record<string, unknown>): Architecture {
  const type = cfg.model_type;
  if (type !== 'dinov2' && type !== 'dinov2_with_registers') {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `config.json: model_type must be 'dinov2' or 'dinov2_with_registers' (got ${JSON.stringify(type)})`,
    );
  }
  for (const k of ['image_size', 'patch_size']) {
    if (Array.isArray(cfg[k]))
      throw new CuriaError('UNIMPLEMENTED', `config.json: non-square '${k}' is not supported`);
  }
  const swiglu = bool(cfg, 'use_swiglu_ffn', false);
  const act = cfg.hidden_act ?? 'gelu';
  if (!swiglu && act !== 'gelu') {
    throw new CuriaError(
      'UNIMPLEMENTED',
      `config.json: hidden_act ${JSON.stringify(act)} is not supported (only exact 'gelu')`,
    );
  }
  const arch: Architecture = {
    hidden_size: num(cfg, 'hidden_size', 768),
    num_layers: num(cfg, 'num_hidden_layers', 12),
    num_heads: num(cfg, 'num_attention_heads', 12),
    patch_size: num(cfg, 'patch_size', 14),
    image_size: num(cfg, 'image_size', 224),
    num_channels: num(cfg, 'num_channels', 3),
    num_register_tokens: type === 'dinov2_with_registers' ? num(cfg, 'num_register_tokens', 4) : 0,
    ffn: swiglu ? 'swiglu' : 'mlp',
    layer_norm_eps: num(cfg, 'layer_norm_eps', 1e-6),
    mlp_ratio: num(cfg, 'mlp_ratio', 4),
    qkv_bias: bool(cfg, 'qkv_bias', true),
  };
  validateArchitecture(arch);
  return arch;
}

/** Reads and parses `<hfDir>/config.json`. */
export async function readHfConfig(hfDir: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(join(hfDir, 'config.json'), 'utf8');
  } catch (e) {
    throw new CuriaError('NOT_FOUND', `config.json not found in the checkpoint directory`, { cause: e });
  }
  let cfg: unknown;
  try {
    cfg = JSON.parse(text);
  } catch (e) {
    throw new CuriaError('INVALID_ARGUMENT', 'config.json is not valid JSON', { cause: e });
  }
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) {
    throw new CuriaError('INVALID_ARGUMENT', 'config.json must hold a JSON object');
  }
  return cfg as Record<string, unknown>;
}

/** BF16 is the upper half of an F32: shift each 16-bit pattern into the high bits. */
export function bfloat16ToFloat32(data: Uint8Array): Float32Array {
  const n = data.byteLength >>> 1;
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = (data[2 * i]! | (data[2 * i + 1]! << 8)) << 16;
  return new Float32Array(bits.buffer);
}

function tensorToF32(t: RawTensor, name: string): Float32Array {
  // Copy F32 views so weights never alias the file buffer of another tensor.
  const dtype: string = t.dtype;
  if (dtype === 'F32' || dtype === 'F16') return toFloat32(t);
  if (dtype === 'BF16') return bfloat16ToFloat32(t.data);
  throw new CuriaError(
    'INVALID_ARGUMENT',
    `checkpoint tensor '${name}' has dtype ${dtype}; expected F32, F16 or BF16`,
  );
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** File name of a sharded checkpoint's index, as `save_pretrained` writes it. */
export const HF_SHARD_INDEX = 'model.safetensors.index.json';
/** File name of a single-file checkpoint. */
export const HF_SINGLE_FILE = 'model.safetensors';

/**
 * The tensors of a checkpoint, whether one safetensors file or shards listed by
 * {@link HF_SHARD_INDEX}: headers are parsed up front, tensor data is read on demand.
 */
export interface HfCheckpoint {
  /** What to name in messages (the file, or the index). */
  readonly label: string;
  /** Every tensor name. */
  names(): Iterable<string>;
  /** Header entry of a tensor (undefined when absent). */
  entry(name: string): SafetensorsEntry | undefined;
  read(name: string): Promise<RawTensor>;
}

function singleFileCheckpoint(file: SafetensorsFile, label: string): HfCheckpoint {
  return {
    label,
    names: () => file.names(),
    entry: (name) => file.header.entries.get(name),
    read: (name) => file.read(name),
  };
}

async function openSafetensors(path: string, what: string): Promise<SafetensorsFile> {
  try {
    return await SafetensorsFile.open(path);
  } catch (e) {
    throw new CuriaError('FAILED_PRECONDITION', `cannot read ${what}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/**
 * Opens a sharded checkpoint from its index (`weight_map`: tensor → shard file). Every shard the
 * index names must exist and hold exactly the tensors the index assigns to it; FAILED_PRECONDITION
 * names the missing shard file, or the tensor and the shard that lacks it.
 */
export async function openShardedCheckpoint(indexPath: string): Promise<HfCheckpoint> {
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (e) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `cannot read ${basename(indexPath)}: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new CuriaError('FAILED_PRECONDITION', `${basename(indexPath)} has no 'weight_map' object`);
  }
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(map as Record<string, unknown>)) {
    // Shards are plain file names next to the index; anything else could escape the folder.
    if (typeof shard !== 'string' || shard !== basename(shard) || shard === '..' || shard === '.') {
      throw new CuriaError(
        'FAILED_PRECONDITION',
        `${basename(indexPath)} maps '${tensor}' to ${JSON.stringify(shard)}, not a file name in the checkpoint folder`,
      );
    }
    weightMap.set(tensor, shard);
  }
  const dir = dirname(indexPath);
  const shards = new Map<string, SafetensorsFile>();
  for (const shard of new Set(weightMap.values())) {
    shards.set(
      shard,
      await openSafetensors(join(dir, shard), `checkpoint shard ${shard} (listed in ${basename(indexPath)})`),
    );
  }
  for (const [tensor, shard] of weightMap) {
    if (shards.get(shard)!.header.entries.has(tensor)) continue;
    const holder = [...shards].find(([, f]) => f.header.entries.has(tensor))?.[0];
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `${basename(indexPath)} puts tensor '${tensor}' in ${shard}, which lacks it` +
        (holder ? ` (it is in ${holder})` : '; no shard holds it'),
    );
  }
  const fileOf = (name: string): SafetensorsFile | undefined => {
    const shard = weightMap.get(name);
    return shard === undefined ? undefined : shards.get(shard);
  };
  return {
    label: basename(indexPath),
    names: () => weightMap.keys(),
    entry: (name) => fileOf(name)?.header.entries.get(name),
    read: (name) => {
      const f = fileOf(name);
      if (!f) throw new CuriaError('FAILED_PRECONDITION', `${basename(indexPath)} names no tensor '${name}'`);
      return f.read(name);
    },
  };
}

/**
 * Opens the weights of an HF checkpoint: a `.safetensors` file, or a folder holding
 * {@link HF_SINGLE_FILE} or, failing that, a sharded checkpoint ({@link HF_SHARD_INDEX} + shards).
 */
export async function openHfCheckpoint(path: string): Promise<HfCheckpoint> {
  let isDir = false;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch {
    // Reported below as an unreadable checkpoint file.
  }
  if (!isDir)
    return singleFileCheckpoint(await openSafetensors(path, `checkpoint ${basename(path)}`), basename(path));
  const single = join(path, HF_SINGLE_FILE);
  const index = join(path, HF_SHARD_INDEX);
  const exists = async (p: string): Promise<boolean> =>
    stat(p).then(
      () => true,
      () => false,
    );
  if (!(await exists(single)) && (await exists(index))) return openShardedCheckpoint(index);
  const what = (await exists(single))
    ? `checkpoint ${HF_SINGLE_FILE}`
    : `checkpoint ${HF_SINGLE_FILE} (the folder has no ${HF_SHARD_INDEX} either)`;
  return singleFileCheckpoint(await openSafetensors(single, what), HF_SINGLE_FILE);
}

/**
 * Loads and validates every backbone parameter of `arch` from a checkpoint ({@link openHfCheckpoint}:
 * a safetensors file, or a folder with a single-file or sharded checkpoint; HF names, optionally
 * prefixed `dinov2.` or `dino.`; `embeddings.mask_token` and other tensors are ignored).
 * Throws FAILED_PRECONDITION naming the first missing tensor and INVALID_ARGUMENT naming a tensor
 * with the wrong shape or dtype. Tensors are converted to F32.
 */
export async function loadHfWeights(
  path: string,
  arch: Architecture,
  signal?: AbortSignal,
): Promise<DinoWeights> {
  const file = await openHfCheckpoint(path);
  const names = new Set(file.names());
  const prefix = HF_PREFIXES.find((p) => names.has(`${p}embeddings.cls_token`));
  if (prefix === undefined) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `checkpoint lacks tensor 'embeddings.cls_token' (also looked for prefixes 'dinov2.' and 'dino.')`,
    );
  }
  const expected = expectedParameters(arch);
  for (const [name, shape] of expected) {
    const entry = file.entry(prefix + name);
    if (!entry) throw new CuriaError('FAILED_PRECONDITION', `checkpoint lacks tensor '${prefix + name}'`);
    if (!sameShape(entry.shape, shape)) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `checkpoint tensor '${prefix + name}' has shape [${entry.shape.join(', ')}], expected [${shape.join(', ')}]`,
      );
    }
  }
  const out = new Map<string, Float32Array>();
  for (const name of expected.keys()) {
    if (signal?.aborted) throw new CuriaError('CANCELLED', 'checkpoint import cancelled');
    out.set(name, tensorToF32(await file.read(prefix + name), prefix + name));
  }
  return out;
}
