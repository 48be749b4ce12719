import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { CuriaError } from '@curia/errors';
import { SafetensorsFile, fromFloat32, toFloat32, writeSafetensors } from '@curia/tensors';

import type { FeatureRequirement, HeadFeatures } from './features.js';
import type { BackboneArchitectureLike, BackboneFingerprint } from './fingerprint.js';
import { checkFingerprintCompatibility } from './fingerprint.js';
import { headMetaSchema, type HeadMeta } from './head-schema.js';
import type { HeadModel, Weight } from './head-model.js';
import { OnnxAttentionModule, type OnnxAttentionOptions } from './infer/attention-runner.js';
import { attentionWeightsOf, runHeadOn, type HeadOutput } from './infer/run.js';
import { attentionModuleForward } from './math/attention.js';

/** Options of {@link Head.run}. */
export interface HeadRunOptions {
  readonly signal?: AbortSignal;
  /**
   * Attention-3d heads: `onnx` (default) runs the attention module as ONNX graphs in
   * onnxruntime-node, built on first use (or {@link Head.prepare}) and cached on the head;
   * `js` runs the TypeScript reference implementation.
   */
  readonly backend?: 'onnx' | 'js';
  /**
   * Attention-3d heads: most tokens the attention module may take (selected slices × tokens per
   * slice); RESOURCE_EXHAUSTED above. Self-attention costs O(tokens²·hidden). Default: no cap.
   */
  readonly maxAttentionTokens?: number;
}

/** A native head bundle in memory: validated metadata plus its (small) weights. */
export class Head implements HeadModel {
  private attention: Promise<OnnxAttentionModule> | null = null;

  constructor(
    readonly meta: HeadMeta,
    readonly weights: ReadonlyMap<string, Weight>,
  ) {}

  /**
   * Builds what inference needs beyond the weights (the ONNX attention graphs of an attention-3d
   * head, once; later calls reuse them). Call on head load so the first Predict is not slower.
   */
  async prepare(options: OnnxAttentionOptions = {}): Promise<void> {
    if (this.meta.kind === 'attention-3d') await this.onnxAttention(options);
  }

  /** The cached ONNX attention module of an attention-3d head (built on first call). */
  onnxAttention(options: OnnxAttentionOptions = {}): Promise<OnnxAttentionModule> {
    if (!this.attention) {
      const p = OnnxAttentionModule.create(attentionWeightsOf(this), options);
      // A failed build is not cached: the next call retries.
      p.catch(() => {
        if (this.attention === p) this.attention = null;
      });
      this.attention = p;
    }
    return this.attention;
  }

  /** Releases native resources (ORT sessions); the head can still run and rebuilds them. */
  async release(): Promise<void> {
    const p = this.attention;
    this.attention = null;
    if (p) await (await p.catch(() => null))?.release();
  }

  /** What this head needs from Embed. */
  requirements(): FeatureRequirement {
    return this.meta.requirements;
  }

  /** Weight by name; INTERNAL when a validated bundle lacks it. */
  weight(name: string): Weight {
    const w = this.weights.get(name);
    if (!w) throw new CuriaError('INTERNAL', `head '${this.meta.name}' has no weight '${name}'`);
    return w;
  }

  /** Runs the head on features computed as {@link requirements} asks. */
  run(features: HeadFeatures, options: HeadRunOptions = {}): Promise<HeadOutput> {
    return runHeadOn(this, features, {
      signal: options.signal,
      maxAttentionTokens: options.maxAttentionTokens ?? Infinity,
      attention:
        (options.backend ?? 'onnx') === 'onnx'
          ? async (x, rows, signal) => (await this.onnxAttention()).forward(x, rows, signal)
          : (x, rows, signal) => attentionModuleForward(x, rows, attentionWeightsOf(this), signal),
    });
  }
}

/** head.json file name inside a bundle directory. */
export const HEAD_JSON = 'head.json';
/** Weights file name inside a bundle directory. */
export const HEAD_WEIGHTS = 'weights.safetensors';

/** Validates raw head.json content; INVALID_ARGUMENT lists the offending fields. */
export function parseHeadMeta(raw: unknown, where = HEAD_JSON): HeadMeta {
  const r = headMetaSchema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new CuriaError('INVALID_ARGUMENT', `${where} is not a valid head bundle: ${issues}`);
  }
  return r.data;
}

/** Writes a head bundle (head.json + weights.safetensors) into `dir`, creating it. */
export async function saveHead(dir: string, head: Head): Promise<void> {
  parseHeadMeta(head.meta);
  await mkdir(dir, { recursive: true });
  const tensors = [...head.weights].map(
    ([n, w]) => [n, fromFloat32(w.data, w.shape)] as [string, ReturnType<typeof fromFloat32>],
  );
  await writeSafetensors(join(dir, HEAD_WEIGHTS), tensors, { format: 'curia-head', kind: head.meta.kind });
  await writeFile(join(dir, HEAD_JSON), `${JSON.stringify(head.meta, null, 2)}\n`);
}

/** Loads and validates a native head bundle directory. */
export async function loadHead(dir: string): Promise<Head> {
  let text: string;
  try {
    text = await readFile(join(dir, HEAD_JSON), 'utf8');
  } catch (e) {
    throw new CuriaError('NOT_FOUND', `no ${HEAD_JSON} in head bundle directory ${dir}`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CuriaError('INVALID_ARGUMENT', `${join(dir, HEAD_JSON)} is not valid JSON`, { cause: e });
  }
  const meta = parseHeadMeta(raw, join(dir, HEAD_JSON));
  const f = await SafetensorsFile.open(join(dir, HEAD_WEIGHTS));
  const weights = new Map<string, Weight>();
  for (const name of f.names()) {
    const t = await f.read(name);
    weights.set(name, { shape: t.shape, data: toFloat32(t) });
  }
  const head = new Head(meta, weights);
  validateHeadWeights(head);
  return head;
}

function expectShape(head: Head, name: string, shape: readonly number[]): void {
  const w = head.weights.get(name);
  if (!w) throw new CuriaError('INVALID_ARGUMENT', `head '${head.meta.name}' lacks weight '${name}'`);
  if (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i])) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `head '${head.meta.name}' weight '${name}' has shape [${w.shape.join(', ')}], expected [${shape.join(', ')}]`,
    );
  }
}

/** Checks that every weight the head kind uses exists with the shape its architecture implies. */
export function validateHeadWeights(head: Head): void {
  const a = head.meta.architecture;
  const d = head.meta.requirements.hidden;
  switch (head.meta.kind) {
    case 'cls-linear':
    case 'mask-linear':
    case 'volume-mean-linear':
    case 'attention-3d':
      expectShape(head, 'classifier.weight', [a.outputs, a.input_dim]);
      expectShape(head, 'classifier.bias', [a.outputs]);
      break;
    case 'cox':
      expectShape(head, 'cox.weight', [1, a.input_dim]);
      expectShape(head, 'cox.bias', [1]);
      expectShape(head, 'cox.baseline_times', [head.weight('cox.baseline_times').data.length]);
      expectShape(head, 'cox.baseline_cumhaz', [head.weight('cox.baseline_times').data.length]);
      break;
    case 'mlp': {
      const sizes = a.mlp_sizes;
      if (!sizes)
        throw new CuriaError('INVALID_ARGUMENT', `mlp head '${head.meta.name}' lacks architecture.mlp_sizes`);
      for (let i = 0; i + 1 < sizes.length; i++) {
        expectShape(head, `mlp.${i}.weight`, [sizes[i + 1]!, sizes[i]!]);
        expectShape(head, `mlp.${i}.bias`, [sizes[i + 1]!]);
      }
      break;
    }
  }
  if (head.meta.kind === 'attention-3d') {
    const at = a.attention;
    if (!at)
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `attention-3d head '${head.meta.name}' lacks architecture.attention`,
      );
    if (d % at.num_heads !== 0) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `hidden ${d} is not divisible by attention num_heads ${at.num_heads}`,
      );
    }
    for (const b of new Set(at.blocks)) {
      const p = `attention_module.${b}_attention`;
      expectShape(head, `${p}.attention.multihead_attn.in_proj_weight`, [3 * d, d]);
      expectShape(head, `${p}.attention.multihead_attn.in_proj_bias`, [3 * d]);
      expectShape(head, `${p}.attention.multihead_attn.out_proj.weight`, [d, d]);
      expectShape(head, `${p}.attention.multihead_attn.out_proj.bias`, [d]);
      expectShape(head, `${p}.attention.norm.weight`, [d]);
      expectShape(head, `${p}.attention.norm.bias`, [d]);
    }
    if (at.blocks.includes('cross'))
      expectShape(head, 'attention_module.cross_attention.learned_queries', [at.num_queries, d]);
  }
}

/**
 * Checks that `head` can run on a serving backbone with architecture `arch` (and optionally exactly
 * the weights fingerprinted as `servingFingerprint`). FAILED_PRECONDITION names what differs.
 * Fingerprints are of checkpoint weights, so a bundle and its INT8 derivative (same checkpoint,
 * same architecture, same `feature_space`) pass alike; which model *ref* a head may read from is
 * `modelsCompatible` in @curia/client.
 */
export function checkBackboneCompatibility(
  head: Head,
  arch: BackboneArchitectureLike,
  servingFingerprint?: BackboneFingerprint,
): void {
  const fp = head.meta.backbone;
  if (fp) {
    checkFingerprintCompatibility(head.meta.name, fp, arch, servingFingerprint);
  } else if (head.meta.requirements.hidden !== arch.hidden_size) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `head '${head.meta.name}' expects hidden_size ${head.meta.requirements.hidden}, serving backbone has ${arch.hidden_size}`,
    );
  }
}
