import { describe, expect, it } from 'vitest';

import { bundlePreprocessSpec, CURIA_DEFAULT_PREPROCESS_SPEC, validatePreprocessSpec } from './spec.js';

describe('bundlePreprocessSpec', () => {
  it("is Curia's spec at the bundle's size with its clip_below_air", () => {
    expect(bundlePreprocessSpec({ image_size: 512, clip_below_air: false })).toEqual(
      CURIA_DEFAULT_PREPROCESS_SPEC,
    );
    const s = bundlePreprocessSpec({ image_size: 64, clip_below_air: true });
    expect(s).toEqual({ ...CURIA_DEFAULT_PREPROCESS_SPEC, targetSize: [64, 64], clipBelowAir: true });
    expect(() => validatePreprocessSpec(s)).not.toThrow();
  });
});
