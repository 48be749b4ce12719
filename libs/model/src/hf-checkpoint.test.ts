import { describe, expect, it } from 'vitest';

import { swigluHidden, presetArchitecture } from './architecture.js';
import { architectureFromHfConfig, bfloat16ToFloat32 } from './hf-checkpoint.js';

describe('hf checkpoint helpers', () => {
  it('widens BF16 bit patterns to F32 (upper 16 bits)', () => {
    // Little-endian 16-bit patterns: 0x3F80 = 1, 0xC000 = -2, 0x4049 = 3.140625, 0x0000 = 0.
    const bytes = Uint8Array.of(0x80, 0x3f, 0x00, 0xc0, 0x49, 0x40, 0x00, 0x00);
    expect([...bfloat16ToFloat32(bytes)]).toEqual([1, -2, 3.140625, 0]);
  });

  it('sizes the SwiGLU hidden layer like HF Dinov2SwiGLUFFN', () => {
    // (int(int(D·4)·2/3) + 7) // 8 · 8 by hand: 96 → 256 (the shared tiny-swiglu weights_out is [96, 256]),
    // 768 → 2048, 1024 → 2736.
    expect(swigluHidden(presetArchitecture('tiny', { ffn: 'swiglu' }))).toBe(256);
    expect(swigluHidden(presetArchitecture('curia-b', { ffn: 'swiglu' }))).toBe(2048);
    expect(swigluHidden(presetArchitecture('curia-l', { ffn: 'swiglu' }))).toBe(2736);
  });

  it('maps HF config keys and defaults', () => {
    const a = architectureFromHfConfig({
      model_type: 'dinov2',
      hidden_size: 96,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      image_size: 512,
      patch_size: 16,
      num_channels: 1,
      use_swiglu_ffn: true,
    });
    expect(a).toMatchObject({
      ffn: 'swiglu',
      num_register_tokens: 0,
      layer_norm_eps: 1e-6,
      mlp_ratio: 4,
      qkv_bias: true,
    });
    expect(() => architectureFromHfConfig({ model_type: 'dinov2', hidden_act: 'relu' })).toThrow(
      /hidden_act "relu"/,
    );
  });
});
