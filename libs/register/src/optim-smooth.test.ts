import { mulberry32 } from '@curia/tensors';
import { describe, expect, it } from 'vitest';

import { boxSmooth } from './optim-smooth.js';

const dims = [7, 5, 4] as const;
const n = 7 * 5 * 4;

/** Brute force: the mean of the in-bounds voxels of the (2r+1)³ window. */
function bruteBox(a: Float64Array, r: number): Float64Array {
  const out = new Float64Array(n);
  for (let k = 0; k < 4; k++) {
    for (let j = 0; j < 5; j++) {
      for (let i = 0; i < 7; i++) {
        let s = 0;
        let c = 0;
        for (let dz = -r; dz <= r; dz++) {
          for (let dy = -r; dy <= r; dy++) {
            for (let dx = -r; dx <= r; dx++) {
              const x = i + dx;
              const y = j + dy;
              const z = k + dz;
              if (x < 0 || y < 0 || z < 0 || x >= 7 || y >= 5 || z >= 4) continue;
              s += a[x + 7 * (y + 5 * z)]!;
              c++;
            }
          }
        }
        out[i + 7 * (j + 5 * k)] = s / c;
      }
    }
  }
  return out;
}

describe('normalised box smoothing', () => {
  for (const r of [1, 2]) {
    it(`radius ${r}: the in-bounds window mean, and an exact adjoint`, () => {
      const rnd = mulberry32(r);
      const x = Float64Array.from({ length: 2 * n }, () => rnd() - 0.5);
      const y = Float64Array.from({ length: 2 * n }, () => rnd() - 0.5);
      const bx = boxSmooth(Float64Array.from(x), 2, dims, r, 1);
      const want = bruteBox(x.subarray(n), r);
      for (let v = 0; v < n; v++) expect(bx[n + v]!).toBeCloseTo(want[v]!, 12);
      // <B² x, y> = <x, (Bᵀ)² y>
      const b2x = boxSmooth(Float64Array.from(x), 2, dims, r, 2);
      const bty = boxSmooth(Float64Array.from(y), 2, dims, r, 2, true);
      let lhs = 0;
      let rhs = 0;
      for (let v = 0; v < 2 * n; v++) {
        lhs += b2x[v]! * y[v]!;
        rhs += x[v]! * bty[v]!;
      }
      expect(lhs).toBeCloseTo(rhs, 12);
    });
  }

  it('keeps constants and handles axes of length 1 and 2', () => {
    const a = new Float32Array(1 * 2 * 3).fill(2.5);
    boxSmooth(a, 1, [1, 2, 3], 1, 3);
    for (const v of a) expect(v).toBeCloseTo(2.5, 6);
  });
});
