import { createHash } from 'node:crypto';

import { CuriaError } from '@curia/errors';
import { SafetensorsFile } from '@curia/tensors';

/** Shape-level identity of a DINOv2 backbone plus content hashes of a few small tensors. */
export interface BackboneFingerprint {
  readonly hidden_size: number;
  readonly num_layers: number;
  readonly patch_size: number;
  readonly num_channels: number;
  /** Patch tokens the position embedding table covers (grid²). */
  readonly num_patches: number;
  readonly num_register_tokens: number;
  readonly ffn: 'mlp' | 'swiglu';
  readonly tensor_count: number;
  /** sha256 of the sorted (name, dtype, shape) list, names without the checkpoint prefix. */
  readonly header_sha256: string;
  /** sha256 over the bytes of `sample_tensors` (in that order): detects different weights of the same shape. */
  readonly sample_sha256: string;
  readonly sample_tensors: readonly string[];
}

/** The subset of `@curia/model`'s Architecture a compatibility check needs. */
export interface BackboneArchitectureLike {
  readonly hidden_size: number;
  readonly num_layers: number;
  readonly patch_size: number;
  readonly image_size: number;
  readonly num_channels: number;
  readonly num_register_tokens?: number;
  readonly ffn?: 'mlp' | 'swiglu';
}

function dimOf(shape: readonly number[] | undefined, axis: number, what: string): number {
  const v = shape?.[axis];
  if (v === undefined)
    throw new CuriaError('INVALID_ARGUMENT', `backbone tensor ${what} is missing or has too few dims`);
  return v;
}

/**
 * Fingerprints the backbone tensors of a safetensors file whose names start with `prefix`
 * (`'dino.'` inside a Curia head, `''` for an HF backbone). Only the header and a few tiny
 * tensors are read.
 */
export async function fingerprintBackbone(path: string, prefix: string): Promise<BackboneFingerprint> {
  const f = await SafetensorsFile.open(path);
  const entries = [...f.header.entries]
    .filter(([n]) => n.startsWith(prefix))
    .map(([n, e]) => [n.slice(prefix.length), e] as const);
  if (entries.length === 0) {
    throw new CuriaError('INVALID_ARGUMENT', `${path}: no backbone tensors named '${prefix}*'`);
  }
  const byName = new Map(entries);
  const shape = (n: string): readonly number[] | undefined => byName.get(n)?.shape;
  const hidden = dimOf(shape('embeddings.cls_token'), 2, 'embeddings.cls_token');
  const proj = shape('embeddings.patch_embeddings.projection.weight');
  const layers = new Set<number>();
  for (const [n] of entries) {
    const m = /^encoder\.layer\.(\d+)\./.exec(n);
    if (m) layers.add(Number(m[1]));
  }
  const regs = shape('embeddings.register_tokens');
  const header = entries
    .map(([n, e]) => `${n}|${e.dtype}|${e.shape.join('x')}`)
    .sort()
    .join('\n');
  const last = layers.size - 1;
  const sample = [
    'embeddings.cls_token',
    'embeddings.patch_embeddings.projection.bias',
    `encoder.layer.${last}.layer_scale2.lambda1`,
    'layernorm.weight',
    'layernorm.bias',
  ].filter((n) => byName.has(n));
  const h = createHash('sha256');
  for (const n of sample) h.update((await f.read(prefix + n)).data);
  return {
    hidden_size: hidden,
    num_layers: layers.size,
    patch_size: dimOf(proj, 2, 'embeddings.patch_embeddings.projection.weight'),
    num_channels: dimOf(proj, 1, 'embeddings.patch_embeddings.projection.weight'),
    num_patches: dimOf(shape('embeddings.position_embeddings'), 1, 'embeddings.position_embeddings') - 1,
    num_register_tokens: regs ? dimOf(regs, 1, 'embeddings.register_tokens') : 0,
    ffn: byName.has('encoder.layer.0.mlp.weights_in.weight') ? 'swiglu' : 'mlp',
    tensor_count: entries.length,
    header_sha256: createHash('sha256').update(header).digest('hex'),
    sample_sha256: h.digest('hex'),
    sample_tensors: sample,
  };
}

/**
 * Checks that a head trained on the backbone `fp` can run on a serving backbone of architecture
 * `arch` (and, when given, exactly those weights: `servingFp`). Throws FAILED_PRECONDITION naming
 * every field that differs.
 */
export function checkFingerprintCompatibility(
  headName: string,
  fp: BackboneFingerprint,
  arch: BackboneArchitectureLike,
  servingFp?: BackboneFingerprint,
): void {
  const diffs: string[] = [];
  const cmp = (field: string, head: unknown, serving: unknown): void => {
    if (head !== serving) diffs.push(`${field}: head ${String(head)} vs serving ${String(serving)}`);
  };
  cmp('hidden_size', fp.hidden_size, arch.hidden_size);
  cmp('num_layers', fp.num_layers, arch.num_layers);
  cmp('patch_size', fp.patch_size, arch.patch_size);
  cmp('num_channels', fp.num_channels, arch.num_channels);
  cmp('num_patches', fp.num_patches, (arch.image_size / arch.patch_size) ** 2);
  cmp('num_register_tokens', fp.num_register_tokens, arch.num_register_tokens ?? 0);
  if (arch.ffn !== undefined) cmp('ffn', fp.ffn, arch.ffn);
  if (servingFp) {
    cmp('header_sha256', fp.header_sha256, servingFp.header_sha256);
    cmp('sample_sha256 (weights)', fp.sample_sha256, servingFp.sample_sha256);
  }
  if (diffs.length > 0) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `head '${headName}' was trained on a different backbone: ${diffs.join('; ')}`,
    );
  }
}
