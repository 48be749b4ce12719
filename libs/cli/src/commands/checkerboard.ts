import type { DisplaySlice } from '@curia/phantom';

/** Side of a checkerboard tile, display pixels. */
export const CHECKERBOARD_TILE_PX = 16;

/**
 * Two display slices of one size interleaved in square tiles: tile (r, c) shows `a` where r + c is
 * even and `b` where it is odd, each mapped from its own intensity window [lo, hi] to [0, 1] (render
 * the result with `window: [0.5, 1]`), so a misalignment shows as broken edges at the tile borders
 * whatever the two images' intensity scales (CT and MR alike).
 */
export function checkerboard(
  a: DisplaySlice,
  b: DisplaySlice,
  windows: { readonly a: readonly [number, number]; readonly b: readonly [number, number] },
  tile = CHECKERBOARD_TILE_PX,
): DisplaySlice {
  const { width, height } = a;
  if (b.width !== width || b.height !== height) {
    throw new Error(`checkerboard of a ${width}x${height} and a ${b.width}x${b.height} slice`);
  }
  const unit = (v: number, [lo, hi]: readonly [number, number]): number =>
    hi > lo ? Math.min(1, Math.max(0, (v - lo) / (hi - lo))) : 0;
  const values = new Float32Array(width * height);
  for (let r = 0; r < height; r++) {
    for (let c = 0; c < width; c++) {
      const i = r * width + c;
      const fromA = (Math.floor(r / tile) + Math.floor(c / tile)) % 2 === 0;
      values[i] = fromA ? unit(a.values[i]!, windows.a) : unit(b.values[i]!, windows.b);
    }
  }
  return { width, height, values };
}
