import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { CuriaError } from '@curia/errors';
import { SafetensorsFile, toFloat32 } from '@curia/tensors';
import { z } from 'zod';

import type { FeatureRequirement, FeatureSpec } from './features.js';
import { fingerprintBackbone, type BackboneFingerprint } from './fingerprint.js';
import type { Weight } from './head-model.js';
import { Head, saveHead, validateHeadWeights } from './head.js';
import { HEAD_SCHEMA_VERSION, type HeadMeta } from './head-schema.js';

/** Curia's published `Dinov2ForImageClassificationConfig` (config.json of a head). */
const curiaConfigSchema = z.looseObject({
  model_type: z.literal('dinov2_custom_classifier'),
  model_name: z.string().optional(),
  num_classes: z.int().positive(),
  num_slices: z.int().positive().nullable().optional(),
  /** null = full patch tokens; k ≥ 1 = k×k average pooling; 0 is kept as written (see {@link planFor}). */
  kernel_size: z.int().nonnegative().nullable().optional(),
  use_n_blocks: z.int().positive().nullable().optional(),
  use_class_token: z.boolean().optional(),
  use_avgpool_per_slice: z.boolean().optional(),
  use_avgpool_on_the_volume: z.boolean().optional(),
  attention_cfg: z
    .looseObject({
      num_heads: z.int().positive().optional(),
      num_queries: z.int().positive().optional(),
      block: z
        .array(z.enum(['self', 'cross']))
        .min(1)
        .optional(),
    })
    .nullable()
    .optional(),
  regression: z.boolean().optional(),
});

/** Parsed Curia head config. */
export type CuriaHeadConfig = z.infer<typeof curiaConfigSchema>;

/** Options of {@link importCuriaHead}. */
export interface ImportCuriaOptions {
  /**
   * Which input the bundle serves. Curia heads switch on the presence of a mask at call time
   * (2D: CLS token vs mask-pooled tokens); a native bundle fixes one. Default `cls`.
   */
  readonly input?: 'cls' | 'mask';
  /** Force 2D or 3D. Default: 3D when the config sets attention_cfg, kernel_size, num_slices or an avgpool flag. */
  readonly dims?: '2d' | '3d';
  readonly name?: string;
  readonly version?: string;
  /** Output names; default class_0.. (value_0.. for regression). */
  readonly labels?: readonly string[];
}

const unimplemented = (msg: string): CuriaError => new CuriaError('UNIMPLEMENTED', msg);

interface Plan {
  kind: HeadMeta['kind'];
  req: Omit<FeatureRequirement, 'hidden'>;
  pe: boolean;
}

/**
 * Maps Curia's config switches to a native head kind and feature requirement, following Curia's
 * `Dinov2ForImageClassification.forward` / `extract_3D_features`:
 * - `kernel_size` is read only by the 3D path over raw patch tokens without a mask
 *   (`extract_slice_features`, torch `avg_pool2d`); 2D heads, mask inputs and the per-slice /
 *   per-volume average pooling ignore it. `kernel_size = 0` is therefore ignored wherever Curia
 *   ignores the field (and alone does not make a head 3D), and rejected where Curia would pool
 *   with it: `avg_pool2d` refuses a zero kernel, so such a head cannot run in Curia either.
 *   `null` there means no pooling (all patch tokens per slice).
 * - `use_n_blocks` is not passed on the mask path (Curia uses 1 there); elsewhere n > 1
 *   concatenates n blocks (n·hidden wide), which neither the attention module nor the classifier
 *   (both hidden wide) accept, so Curia cannot run it.
 */
function planFor(cfg: CuriaHeadConfig, opts: ImportCuriaOptions, grid: number): Plan {
  const mask = opts.input === 'mask';
  const is3d =
    opts.dims === '3d' ||
    (opts.dims !== '2d' &&
      (cfg.attention_cfg != null ||
        (cfg.kernel_size != null && cfg.kernel_size > 0) ||
        cfg.num_slices != null ||
        cfg.use_avgpool_per_slice === true ||
        cfg.use_avgpool_on_the_volume === true));
  if (!is3d) {
    // Curia's 2D path ignores use_n_blocks / use_class_token: CLS of last_hidden_state, or the mask-weighted mean.
    const input: FeatureSpec = mask
      ? { kind: 'mask_pooled', norm: 'post', weighting: 'mask' }
      : { kind: 'cls', norm: 'post' };
    return {
      kind: mask ? 'mask-linear' : 'cls-linear',
      req: { inputs: [input], slices: 'each', mask },
      pe: false,
    };
  }
  const nBlocks = mask ? 1 : (cfg.use_n_blocks ?? 1);
  if (nBlocks !== 1) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `use_n_blocks=${nBlocks} without a mask: Curia concatenates ${nBlocks} blocks into ${nBlocks}×hidden features that its hidden-wide attention module and classifier cannot take`,
    );
  }
  const slices = cfg.num_slices == null ? 'all' : { central: cfg.num_slices };
  const perSlice = cfg.use_avgpool_per_slice === true;
  const perVolume = !perSlice && cfg.use_avgpool_on_the_volume === true;
  const classToken = cfg.use_class_token === true;
  if (classToken && (perSlice || perVolume)) {
    throw unimplemented(
      'use_class_token with avgpool pooling: Curia concatenates 2×hidden features its classifier cannot take',
    );
  }
  // Every Curia 3D feature comes from hidden_states[-1]: the last block before the final LayerNorm.
  const sliceMean: FeatureSpec = mask
    ? { kind: 'mask_pooled', norm: 'pre', weighting: 'binary' }
    : { kind: 'avg_pooled_tokens', k: grid, norm: 'pre' };
  if (cfg.attention_cfg != null) {
    if (perVolume)
      throw unimplemented('attention_cfg with use_avgpool_on_the_volume is not a valid Curia head');
    if (perSlice) return { kind: 'attention-3d', req: { inputs: [sliceMean], slices, mask }, pe: true };
    if (mask)
      throw unimplemented(
        '3D attention over raw masked tokens would ship full patch tokens; use use_avgpool_per_slice',
      );
    if (cfg.kernel_size === 0) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        'kernel_size=0 on a 3D attention head over patch tokens: Curia average-pools with it and torch avg_pool2d rejects a zero kernel; use null (all tokens) or k >= 1',
      );
    }
    const inputs: FeatureSpec[] = [];
    // Curia's class token here is hidden_states[-1][:, 0]: the CLS row before the final LayerNorm.
    if (classToken) inputs.push({ kind: 'cls', norm: 'pre' });
    inputs.push({ kind: 'avg_pooled_tokens', k: cfg.kernel_size ?? 1, norm: 'pre' });
    return { kind: 'attention-3d', req: { inputs, slices, mask }, pe: true };
  }
  if (perVolume) return { kind: 'volume-mean-linear', req: { inputs: [sliceMean], slices, mask }, pe: false };
  throw unimplemented(
    '3D head without attention_cfg or use_avgpool_on_the_volume: Curia would emit per-token logits',
  );
}

async function readWeights(f: SafetensorsFile, names: readonly string[]): Promise<Map<string, Weight>> {
  const out = new Map<string, Weight>();
  for (const n of names) {
    const t = await f.read(n);
    out.set(n, { shape: t.shape, data: toFloat32(t) });
  }
  return out;
}

/**
 * Reads a head in Curia's published format (config.json + model.safetensors with classifier.*,
 * attention_module.* and a dino.* backbone copy) into a native {@link Head}. The backbone copy is
 * never loaded: only its header and a few tiny tensors are read to fingerprint it.
 */
export async function readCuriaHead(dir: string, options: ImportCuriaOptions = {}): Promise<Head> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
  } catch (e) {
    throw new CuriaError('NOT_FOUND', `cannot read a JSON config.json in Curia head folder ${dir}`, {
      cause: e,
    });
  }
  const parsed = curiaConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${join(dir, 'config.json')} is not a Curia head config: ${issues}`,
    );
  }
  const cfg = parsed.data;
  const modelPath = join(dir, 'model.safetensors');
  const f = await SafetensorsFile.open(modelPath);
  const cw = f.header.entries.get('classifier.weight');
  if (!cw || cw.shape.length !== 2)
    throw new CuriaError('INVALID_ARGUMENT', `${modelPath} lacks a 2-D classifier.weight`);
  const [outputs, hidden] = cw.shape as [number, number];
  if (outputs !== cfg.num_classes) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `classifier.weight has ${outputs} outputs but config num_classes is ${cfg.num_classes}`,
    );
  }
  const hasDino = f.names().some((n) => n.startsWith('dino.'));
  const backbone: BackboneFingerprint | null = hasDino ? await fingerprintBackbone(modelPath, 'dino.') : null;
  if (backbone && backbone.hidden_size !== hidden) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `classifier input ${hidden} does not match the dino.* hidden size ${backbone.hidden_size}`,
    );
  }
  const grid = backbone ? Math.round(Math.sqrt(backbone.num_patches)) : 32;
  const plan = planFor(cfg, options, grid);
  const at = cfg.attention_cfg;
  const blocks = at ? (at.block ?? ['self', 'cross']) : [];
  const names = ['classifier.weight', 'classifier.bias'];
  if (plan.kind === 'attention-3d') {
    names.push(
      ...f.names().filter((n) => blocks.some((b) => n.startsWith(`attention_module.${b}_attention.`))),
    );
  }
  const weights = await readWeights(f, names);
  const task = cfg.regression ? 'regression' : 'classification';
  const labels = options.labels
    ? [...options.labels]
    : Array.from({ length: outputs }, (_, i) => `${task === 'regression' ? 'value' : 'class'}_${i}`);
  if (labels.length !== outputs)
    throw new CuriaError('INVALID_ARGUMENT', `labels has ${labels.length} names for ${outputs} outputs`);
  const dirName =
    dir
      .replace(/[\\/]+$/, '')
      .split(/[\\/]/)
      .pop() ?? 'curia-head';
  const meta: HeadMeta = {
    schema_version: HEAD_SCHEMA_VERSION,
    name: options.name ?? dirName,
    version: options.version ?? '1',
    kind: plan.kind,
    task,
    labels,
    requirements: { ...plan.req, hidden },
    architecture: {
      input_dim: hidden,
      outputs,
      ...(plan.kind === 'attention-3d' && at
        ? { attention: { num_heads: at.num_heads ?? 1, num_queries: at.num_queries ?? 1, blocks } }
        : {}),
      ...(plan.pe ? { slice_position_embedding: true } : {}),
    },
    backbone,
    provenance: {
      source: 'curia-import',
      imported_from: dirName,
      curia_config: cfg,
      created_at: new Date().toISOString(),
    },
  };
  const head = new Head(meta, weights);
  validateHeadWeights(head);
  return head;
}

/** Imports a Curia head folder and writes it as a native head bundle in `outDir`. */
export async function importCuriaHead(
  dir: string,
  outDir: string,
  options: ImportCuriaOptions = {},
): Promise<Head> {
  const head = await readCuriaHead(dir, options);
  await saveHead(outDir, head);
  return head;
}
