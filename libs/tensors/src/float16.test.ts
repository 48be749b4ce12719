import { describe, expect, it } from 'vitest';

import { float16ToFloat32, float32ToFloat16, toHalfBits } from './float16.js';

describe('float32ToFloat16', () => {
  it('gives the bits of toHalfBits for every kind of float32 (normal, rounding ties, edges, specials)', () => {
    const words: number[] = [];
    // Every float32 exponent with mantissas at and around the rounding tie of the dropped 13 bits.
    for (let e = 0; e < 256; e++) {
      for (const m of [
        0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x7fe000, 0x7fefff, 0x7ff000, 0x7fffff,
      ]) {
        for (const sign of [0, 0x80000000]) words.push((sign | (e << 23) | m) >>> 0);
      }
    }
    let seed = 12345;
    for (let i = 0; i < 200_000; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      words.push(seed);
    }
    const src = new Float32Array(new Uint32Array(words).buffer);
    const got = float32ToFloat16(src);
    const bad = words.findIndex((_, i) => got[i] !== toHalfBits(src[i]!));
    expect(bad, bad >= 0 ? `0x${words[bad]!.toString(16)}` : '').toBe(-1);
  });

  it('round-trips every finite half exactly', () => {
    const halves = new Uint16Array(0x10000).map((_, i) => i);
    const finite = halves.filter((h) => (h & 0x7c00) !== 0x7c00);
    const back = float32ToFloat16(Float32Array.from(finite, (h) => float16ToFloat32(Uint16Array.of(h))[0]!));
    expect(Buffer.from(back.buffer).equals(Buffer.from(finite.buffer))).toBe(true);
  });

  it('converts a view at an offset of a larger buffer', () => {
    const whole = new Float32Array([9, 1.5, -2, 65504, 1e-7]);
    expect([...float32ToFloat16(whole.subarray(1, 4))]).toEqual([0x3e00, 0xc000, 0x7bff]);
  });
});
