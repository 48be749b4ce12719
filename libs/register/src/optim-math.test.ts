import { mulberry32 } from '@curia/tensors';
import { describe, expect, it } from 'vitest';

import {
  m3Det,
  m3Mul,
  m3Transpose,
  nearestRotation,
  rotationXYZ,
  solveSpd,
  symmetricEigen3,
} from './optim-math.js';

describe('optimiser linear algebra', () => {
  it('eigen-decomposes symmetric 3×3 matrices', () => {
    const rnd = mulberry32(3);
    for (let t = 0; t < 20; t++) {
      const a = Array.from({ length: 9 }, () => rnd() * 2 - 1);
      const s = m3Mul(m3Transpose(a), a);
      const { values, vectors } = symmetricEigen3(s);
      expect(values[0]!).toBeGreaterThanOrEqual(values[1]!);
      expect(values[1]!).toBeGreaterThanOrEqual(values[2]!);
      // S V = V Λ
      const sv = m3Mul(s, vectors);
      for (let r = 0; r < 3; r++)
        for (let c = 0; c < 3; c++) expect(sv[3 * r + c]!).toBeCloseTo(vectors[3 * r + c]! * values[c]!, 10);
    }
  });

  it('projects onto the nearest rotation (and undoes a reflection)', () => {
    const r = rotationXYZ(0.3, -0.2, 1.1);
    const noisy = r.map((x, i) => x * (i % 4 === 0 ? 1.05 : 1) + 0.01 * Math.sin(i));
    const q = nearestRotation(noisy);
    expect(m3Det(q)).toBeCloseTo(1, 12);
    for (let i = 0; i < 9; i++) expect(Math.abs(q[i]! - r[i]!)).toBeLessThan(0.03);
    const reflected = m3Mul(r, [1, 0, 0, 0, 1, 0, 0, 0, -1]);
    expect(m3Det(nearestRotation(reflected))).toBeCloseTo(1, 12);
    const exact = nearestRotation(r);
    for (let i = 0; i < 9; i++) expect(exact[i]!).toBeCloseTo(r[i]!, 12);
  });

  it('solves SPD systems and reports singular ones', () => {
    const a = [4, 1, 0, 1, 3, 1, 0, 1, 2];
    const x = solveSpd(a, [1, 2, 3], 3)!;
    const b = [0, 1, 2].map((r) => a[3 * r]! * x[0]! + a[3 * r + 1]! * x[1]! + a[3 * r + 2]! * x[2]!);
    expect(b).toEqual([expect.closeTo(1, 10), expect.closeTo(2, 10), expect.closeTo(3, 10)]);
    expect(solveSpd([1, 1, 1, 1], [1, 1], 2)).toBeNull();
  });
});
