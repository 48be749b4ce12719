import { describe, expect, it } from 'vitest';

import { KEEP_SCRATCH_BYTES, SliceScratch } from './slice-kernel.js';

describe('SliceScratch.trim', () => {
  it('drops buffers above the cap after a huge slice and keeps ordinary ones for reuse', () => {
    const s = new SliceScratch();
    const small = s.input(512 * 512);
    expect(s.trim(KEEP_SCRATCH_BYTES)).toBe(0);
    expect(s.input(512 * 512)).toBe(small);
    s.input(4096 * 4096); // 128 MiB of float64
    s.output(4096 * 4096);
    s.resize.ensure(4096 * 512);
    expect(s.bytes).toBeGreaterThan(256 * 1024 * 1024);
    expect(s.trim(KEEP_SCRATCH_BYTES)).toBe(2 * 4096 * 4096 * 8);
    expect(s.bytes).toBe(4096 * 512 * 8);
    expect(s.bytes).toBeLessThanOrEqual(KEEP_SCRATCH_BYTES);
  });
});
