import { CuriaError } from '@curia/errors';

/** Feed-forward variant of a DINOv2 block. */
export type FfnKind = 'mlp' | 'swiglu';

/** Shape-defining hyper-parameters of a DINOv2 backbone (HF `Dinov2Config` subset). */
export interface Architecture {
  readonly hidden_size: number;
  readonly num_layers: number;
  readonly num_heads: number;
  readonly patch_size: number;
  readonly image_size: number;
  readonly num_channels: number;
  readonly num_register_tokens: number;
  readonly ffn: FfnKind;
  readonly layer_norm_eps: number;
  readonly mlp_ratio: number;
  /** Whether query/key/value projections carry a bias (HF `qkv_bias`). */
  readonly qkv_bias: boolean;
}

/** Patches per image side (image_size / patch_size). */
export function gridSize(arch: Architecture): number {
  return arch.image_size / arch.patch_size;
}

/** Number of patch tokens (grid²). */
export function numPatches(arch: Architecture): number {
  return gridSize(arch) ** 2;
}

/** Total tokens per image: CLS + registers + patches. */
export function numTokens(arch: Architecture): number {
  return 1 + arch.num_register_tokens + numPatches(arch);
}

/** Hidden width of the MLP (HF `int(hidden_size * mlp_ratio)`). */
export function mlpHidden(arch: Architecture): number {
  return Math.trunc(arch.hidden_size * arch.mlp_ratio);
}

/**
 * Hidden width of HF `Dinov2SwiGLUFFN`: `(int(int(hidden*mlp_ratio) * 2 / 3) + 7) // 8 * 8`.
 * `weights_in` projects to twice this width (gate and value halves).
 */
export function swigluHidden(arch: Architecture): number {
  return Math.floor((Math.trunc((mlpHidden(arch) * 2) / 3) + 7) / 8) * 8;
}

/** Throws INVALID_ARGUMENT when the hyper-parameters cannot describe a valid backbone. */
export function validateArchitecture(arch: Architecture): void {
  const ints: (keyof Architecture)[] = [
    'hidden_size',
    'num_layers',
    'num_heads',
    'patch_size',
    'image_size',
    'num_channels',
  ];
  for (const k of ints) {
    const v = arch[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `architecture.${k} must be a positive integer (got ${String(v)})`,
      );
    }
  }
  if (!Number.isSafeInteger(arch.num_register_tokens) || arch.num_register_tokens < 0) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      'architecture.num_register_tokens must be a non-negative integer',
    );
  }
  if (arch.hidden_size % arch.num_heads !== 0) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `architecture.hidden_size ${arch.hidden_size} is not a multiple of num_heads ${arch.num_heads}`,
    );
  }
  if (arch.image_size % arch.patch_size !== 0) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `architecture.image_size ${arch.image_size} is not a multiple of patch_size ${arch.patch_size}`,
    );
  }
  if (!(arch.layer_norm_eps > 0) || !(arch.mlp_ratio > 0)) {
    throw new CuriaError('INVALID_ARGUMENT', 'architecture.layer_norm_eps and mlp_ratio must be positive');
  }
  if (arch.ffn !== 'mlp' && arch.ffn !== 'swiglu') {
    throw new CuriaError('INVALID_ARGUMENT', `architecture.ffn must be 'mlp' or 'swiglu'`);
  }
}

/** Name and expected shape of every backbone parameter, in HF naming (no model prefix). */
export function expectedParameters(arch: Architecture): Map<string, readonly number[]> {
  const d = arch.hidden_size;
  const p = arch.patch_size;
  const m = new Map<string, readonly number[]>();
  m.set('embeddings.cls_token', [1, 1, d]);
  if (arch.num_register_tokens > 0) m.set('embeddings.register_tokens', [1, arch.num_register_tokens, d]);
  m.set('embeddings.position_embeddings', [1, numPatches(arch) + 1, d]);
  m.set('embeddings.patch_embeddings.projection.weight', [d, arch.num_channels, p, p]);
  m.set('embeddings.patch_embeddings.projection.bias', [d]);
  for (let i = 0; i < arch.num_layers; i++) {
    const l = `encoder.layer.${i}`;
    m.set(`${l}.norm1.weight`, [d]);
    m.set(`${l}.norm1.bias`, [d]);
    for (const x of ['query', 'key', 'value']) {
      m.set(`${l}.attention.attention.${x}.weight`, [d, d]);
      if (arch.qkv_bias) m.set(`${l}.attention.attention.${x}.bias`, [d]);
    }
    m.set(`${l}.attention.output.dense.weight`, [d, d]);
    m.set(`${l}.attention.output.dense.bias`, [d]);
    m.set(`${l}.layer_scale1.lambda1`, [d]);
    m.set(`${l}.norm2.weight`, [d]);
    m.set(`${l}.norm2.bias`, [d]);
    if (arch.ffn === 'mlp') {
      const h = mlpHidden(arch);
      m.set(`${l}.mlp.fc1.weight`, [h, d]);
      m.set(`${l}.mlp.fc1.bias`, [h]);
      m.set(`${l}.mlp.fc2.weight`, [d, h]);
      m.set(`${l}.mlp.fc2.bias`, [d]);
    } else {
      const h = swigluHidden(arch);
      m.set(`${l}.mlp.weights_in.weight`, [2 * h, d]);
      m.set(`${l}.mlp.weights_in.bias`, [2 * h]);
      m.set(`${l}.mlp.weights_out.weight`, [d, h]);
      m.set(`${l}.mlp.weights_out.bias`, [d]);
    }
    m.set(`${l}.layer_scale2.lambda1`, [d]);
  }
  m.set('layernorm.weight', [d]);
  m.set('layernorm.bias', [d]);
  return m;
}

/** Backbone parameters by HF name, all F32. */
export type DinoWeights = ReadonlyMap<string, Float32Array>;

/** Named random-weight presets (see {@link presetArchitecture}). */
export type PresetName = 'tiny' | 'demo' | 'small-demo' | 'curia-b' | 'curia-l';

const base = {
  patch_size: 16,
  image_size: 512,
  num_channels: 1,
  num_register_tokens: 0,
  ffn: 'mlp',
  layer_norm_eps: 1e-6,
  mlp_ratio: 4,
  qkv_bias: true,
} as const;

/**
 * Architecture of a preset: `tiny` is the shared tiny reference shape (96, 2 layers, 4 heads);
 * `demo` (alias `small-demo`) is the default CPU demo (192, 4 layers, 3 heads); `curia-b` / `curia-l`
 * mirror the real Curia ViT-B (768, 12, 12) and ViT-L (1024, 24, 16). All at 512 px / patch 16.
 */
export function presetArchitecture(preset: PresetName, overrides: Partial<Architecture> = {}): Architecture {
  const dims: Record<PresetName, [number, number, number]> = {
    tiny: [96, 2, 4],
    demo: [192, 4, 3],
    'small-demo': [192, 4, 3],
    'curia-b': [768, 12, 12],
    'curia-l': [1024, 24, 16],
  };
  const d = dims[preset];
  if (!d) throw new CuriaError('INVALID_ARGUMENT', `unknown preset '${String(preset)}'`);
  const arch: Architecture = { ...base, hidden_size: d[0], num_layers: d[1], num_heads: d[2], ...overrides };
  validateArchitecture(arch);
  return arch;
}
