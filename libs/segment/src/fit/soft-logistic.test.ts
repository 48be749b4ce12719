import { describe, expect, it } from 'vitest';

import { balanceWeights, fitSoftLogistic } from './soft-logistic.js';

/** Three classes at known centres in 5-D, features with wildly different scales; soft targets. */
function problem(n: number, seed = 7) {
  let s = seed;
  const rand = (): number => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const f = 5;
  const k = 3;
  const centres = [
    [2, 0, 0, 0, 0],
    [0, 2, 0, 0, 0],
    [0, 0, 2, 0, 0],
  ];
  const scale = [1, 100, 0.01, 1, 1];
  const x = new Float32Array(n * f);
  const targets = new Float32Array(n * k);
  const truth: number[] = [];
  for (let r = 0; r < n; r++) {
    // Class 2 is rare (10%): balancing must keep it.
    const c = r % 10 === 0 ? 2 : r % 2;
    truth.push(c);
    for (let j = 0; j < f; j++) x[r * f + j] = (centres[c]![j]! + 0.6 * rand()) * scale[j]!;
    targets[r * k + c] = 0.9;
    targets[r * k + ((c + 1) % k)] = 0.1; // a boundary token: mostly one class
  }
  return { samples: { rows: n, features: f, x, targets }, truth, k };
}

describe('fitSoftLogistic', () => {
  it('separates the classes (the rare one too) and returns weights in the original feature space', async () => {
    const { samples, truth, k } = problem(600);
    const m = await fitSoftLogistic(samples, { classes: k, l2: 1e-3, maxIterations: 200, balanced: true });
    let correct = 0;
    let rareCorrect = 0;
    for (let r = 0; r < samples.rows; r++) {
      const scores = Array.from({ length: k }, (_, q) => {
        let v = m.bias[q]!;
        for (let j = 0; j < samples.features; j++)
          v += samples.x[r * samples.features + j]! * m.weights[j * k + q]!;
        return v;
      });
      const best = scores.indexOf(Math.max(...scores));
      if (best === truth[r]) {
        correct++;
        if (truth[r] === 2) rareCorrect++;
      }
    }
    expect(correct / samples.rows).toBeGreaterThan(0.97);
    expect(rareCorrect / 60).toBeGreaterThan(0.95);
  });

  it('weights classes by inverse target mass (0 for absent classes)', () => {
    const t = Float32Array.from([1, 0, 0, 1, 0, 0, 0.5, 0.5, 0]);
    const w = balanceWeights(t, 3, 3);
    expect(w[0]).toBeCloseTo(3 / (2 * 2.5), 9);
    expect(w[1]).toBeCloseTo(3 / (2 * 0.5), 9);
    expect(w[2]).toBe(0);
  });

  it('stops when cancelled', async () => {
    const { samples, k } = problem(2000);
    const abort = new AbortController();
    abort.abort();
    await expect(
      fitSoftLogistic(samples, {
        classes: k,
        l2: 1e-3,
        maxIterations: 500,
        balanced: true,
        signal: abort.signal,
      }),
    ).rejects.toMatchObject({
      code: 'CANCELLED',
    });
  });
});
