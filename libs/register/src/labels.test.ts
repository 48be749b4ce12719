import { describe, expect, it } from 'vitest';

import { mulberry32 } from '@curia/tensors';
import { dice } from '@curia/volume';

import type { GridField } from './field.js';
import { dicePerLabel, meanEndpointError } from './labels.js';
import { obliqueGrid } from './testing.js';

describe('dicePerLabel', () => {
  it('equals @curia/volume dice for every label, in one pass', () => {
    const rand = mulberry32(9);
    const a = Uint16Array.from({ length: 5000 }, () => Math.floor(rand() * 6) * 300);
    const b = a.map((v) => (rand() < 0.2 ? Math.floor(rand() * 6) * 300 : v));
    b[0] = 4242; // only in b
    const rows = dicePerLabel(a, b);
    expect(rows.map((r) => r.label)).toEqual([300, 600, 900, 1200, 1500, 4242]);
    for (const r of rows) expect(r.dice).toBeCloseTo(dice(a, b, r.label), 12);
    expect(rows.at(-1)).toEqual({ label: 4242, dice: 0, voxelsA: 0, voxelsB: 1 });
    // Asked-for labels, absent from both: 1 (as dice).
    expect(dicePerLabel(a, b, [7])).toEqual([{ label: 7, dice: 1, voxelsA: 0, voxelsB: 0 }]);
    expect(() => dicePerLabel(a, b.subarray(1))).toThrow(/one grid/);
  });
});

describe('meanEndpointError', () => {
  it('is the mean vector distance, inside a mask', () => {
    const grid = obliqueGrid([2, 1, 1], 0, [1, 1, 1], [0, 0, 0]);
    const a: GridField = { grid, channels: 3, data: Float32Array.from([0, 0, 0, 0, 0, 0]) };
    const b: GridField = { grid, channels: 3, data: Float32Array.from([3, 1, 4, 1, 0, 0]) };
    // Voxel 0: (3, 4, 0) → 5; voxel 1: (1, 1, 0) → √2.
    expect(meanEndpointError(a, b)).toBeCloseTo((5 + Math.SQRT2) / 2, 6);
    expect(meanEndpointError(a, b, Uint8Array.from([1, 0]))).toBeCloseTo(5, 6);
    expect(meanEndpointError(a, b, Uint8Array.from([0, 0]))).toBeNaN();
  });
});
