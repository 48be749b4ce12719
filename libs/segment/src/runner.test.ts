import { describe, expect, it } from 'vitest';

import { SegmenterRunner } from './runner.js';
import { segmenterScores, type SegmenterWeights } from './segmenter.js';

function randomHead(kind: 'linear' | 'conv3x3', dim: number, k: number, seed: number): SegmenterWeights {
  let s = seed;
  const r = (): number => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;
  const ks = kind === 'linear' ? 1 : 3;
  return {
    kind,
    dim,
    classes: Array.from({ length: k - 1 }, (_, i) => ({ value: i + 1, name: `c${i + 1}` })),
    center: Float32Array.from({ length: dim }, r),
    kernel: Float32Array.from({ length: k * dim * ks * ks }, r),
    bias: Float32Array.from({ length: k }, r),
  };
}

describe('SegmenterRunner (ONNX Runtime)', () => {
  for (const kind of ['linear', 'conv3x3'] as const) {
    it(`${kind}: matches the TypeScript reference on every slice of a batch`, async () => {
      const g = 8;
      const d = 24;
      const head = randomHead(kind, d, 4, kind === 'linear' ? 1 : 2);
      const runner = await SegmenterRunner.create(head, { grid: g, threads: 1 });
      try {
        let s = 9;
        const tokens = Float32Array.from(
          { length: 3 * g * g * d },
          () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 30 - 1,
        );
        const got = await runner.scores(tokens, 3);
        expect(runner.provider).toBe('cpu');
        for (let i = 0; i < 3; i++) {
          const want = segmenterScores(head, tokens.subarray(i * g * g * d, (i + 1) * g * g * d), g);
          const part = got.subarray(i * want.length, (i + 1) * want.length);
          let max = 0;
          for (let j = 0; j < want.length; j++) max = Math.max(max, Math.abs(part[j]! - want[j]!));
          expect(max).toBeLessThan(1e-4);
        }
        await expect(runner.scores(tokens.subarray(1), 3)).rejects.toMatchObject({
          code: 'INVALID_ARGUMENT',
        });
      } finally {
        await runner.close();
      }
    });
  }
});
