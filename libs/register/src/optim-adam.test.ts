import { mulberry32 } from '@curia/tensors';
import { describe, expect, it } from 'vitest';

import { adamObjective, runAdam, type AdamProblem } from './optim-adam.js';
import { boxSmooth } from './optim-smooth.js';

function problem(seed: number, lambda: number, passes: number): AdamProblem {
  const dims = [6, 5, 4] as const;
  const n = 6 * 5 * 4;
  const channels = 2;
  const rnd = mulberry32(seed);
  const smooth = (): Float32Array => {
    const a = Float32Array.from({ length: channels * n }, () => rnd() * 2 - 1);
    return boxSmooth(a, channels, dims, 1, 1) as Float32Array;
  };
  return {
    fixed: smooth(),
    moving: smooth(),
    channels,
    dims,
    simScale: 1 / n,
    lambda,
    smoothingPasses: passes,
  };
}

describe('Adam objective (feature SSD through trilinear sampling + diffusion, smoothed parameters)', () => {
  for (const [lambda, passes] of [
    [0, 0],
    [0.7, 0],
    [0.7, 2],
  ] as const) {
    it(`hand-derived gradient matches central finite differences (λ ${lambda}, ${passes} smoothing passes)`, () => {
      const p = problem(3 + passes, lambda, passes);
      const n = 6 * 5 * 4;
      const rnd = mulberry32(99);
      // Displacements up to ±1.5 voxels, some pushing positions beyond the grid (clamped).
      const params = Float64Array.from({ length: 3 * n }, () => (rnd() * 2 - 1) * 1.5);
      const grad = new Float64Array(3 * n);
      adamObjective(p, params, grad);
      const scratch = new Float64Array(3 * n);
      const h = 1e-6;
      let worst = 0;
      let checked = 0;
      for (let t = 0; t < 40; t++) {
        const i = Math.floor(rnd() * 3 * n);
        const plus = Float64Array.from(params);
        const minus = Float64Array.from(params);
        plus[i]! += h;
        minus[i]! -= h;
        const fd = (adamObjective(p, plus, scratch).loss - adamObjective(p, minus, scratch).loss) / (2 * h);
        const g = grad[i]!;
        const scale = Math.max(Math.abs(fd), Math.abs(g), 1e-4 * Math.max(...grad.map(Math.abs)));
        worst = Math.max(worst, Math.abs(fd - g) / scale);
        checked++;
      }
      expect(checked).toBe(40);
      expect(worst).toBeLessThan(1e-3);
    });
  }

  it('Adam decreases the loss', async () => {
    const p = problem(5, 0.5, 1);
    const init = new Float64Array(3 * 6 * 5 * 4);
    const losses: number[] = [];
    await runAdam(p, init, { iterations: 30, learningRate: 0.05 }, (_, l) => {
      losses.push(l.loss);
    });
    expect(losses[losses.length - 1]!).toBeLessThan(losses[0]! * 0.9);
  });
});
