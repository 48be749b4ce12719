import { PNG } from 'pngjs';

import { CuriaError } from '@curia/errors';

import type { DisplaySlice } from './slices.js';

/** Options of {@link renderSlicePng}. */
export interface RenderSliceOptions {
  /** Display window [level, width] in HU. Default abdomen soft tissue [40, 400]. */
  readonly window?: readonly [number, number];
  /** Opacity of the label overlay in [0, 1]. Default 0.4; 0 disables the overlay. */
  readonly overlayAlpha?: number;
}

/**
 * A distinct, stable colour per label value (golden-angle hue walk, full saturation-ish), so
 * neighbouring label values get far-apart hues. Label 0 has no colour.
 */
export function labelColor(label: number): readonly [number, number, number] {
  const h = ((label * 137.508) % 360) / 60;
  const s = 0.85;
  const v = 1;
  const c = v * s;
  const x = c * (1 - Math.abs((h % 2) - 1));
  const m = v - c;
  const [r, g, b] =
    h < 1
      ? [c, x, 0]
      : h < 2
        ? [x, c, 0]
        : h < 3
          ? [0, c, x]
          : h < 4
            ? [0, x, c]
            : h < 5
              ? [x, 0, c]
              : [c, 0, x];
  return [Math.round((r + m) * 255), Math.round((g + m) * 255), Math.round((b + m) * 255)];
}

/** RGB lookup table of all 256 label values (index 3 * v). */
function paletteTable(): Uint8Array {
  const t = new Uint8Array(256 * 3);
  for (let v = 1; v < 256; v++) t.set(labelColor(v), 3 * v);
  return t;
}
const PALETTE = paletteTable();

/**
 * Renders a display-ordered slice (see {@link DisplaySlice}: radiological convention, patient's
 * right on the image left, anterior up) as an 8-bit RGB PNG: grey values through the window, and
 * where `slice.labels` is non-zero the label colour blended at `overlayAlpha`.
 */
export function renderSlicePng(slice: DisplaySlice, opts: RenderSliceOptions = {}): Uint8Array {
  const { width, height, values, labels } = slice;
  const n = width * height;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new CuriaError('INVALID_ARGUMENT', `slice size must be positive integers, got ${width}x${height}`);
  }
  if (values.length !== n || (labels && labels.length !== n)) {
    throw new CuriaError('INVALID_ARGUMENT', `slice values/labels must hold width*height = ${n} entries`);
  }
  const [level, win] = opts.window ?? [40, 400];
  if (!Number.isFinite(level) || !Number.isFinite(win) || win <= 0) {
    throw new CuriaError('INVALID_ARGUMENT', `window must be [level, width > 0], got [${level}, ${win}]`);
  }
  const alpha = opts.overlayAlpha ?? 0.4;
  if (!(alpha >= 0 && alpha <= 1)) throw new CuriaError('INVALID_ARGUMENT', `overlayAlpha must be in [0, 1]`);
  const lo = level - win / 2;
  const scale = 255 / win;
  const png = new PNG({ width, height, colorType: 2, inputColorType: 6, inputHasAlpha: true });
  const out = png.data;
  for (let i = 0, o = 0; i < n; i++, o += 4) {
    const g = Math.min(255, Math.max(0, Math.round((values[i]! - lo) * scale)));
    const lab = labels ? labels[i]! & 255 : 0;
    if (lab !== 0 && alpha > 0) {
      const p = 3 * lab;
      out[o] = Math.round(g + alpha * (PALETTE[p]! - g));
      out[o + 1] = Math.round(g + alpha * (PALETTE[p + 1]! - g));
      out[o + 2] = Math.round(g + alpha * (PALETTE[p + 2]! - g));
    } else {
      out[o] = g;
      out[o + 1] = g;
      out[o + 2] = g;
    }
    out[o + 3] = 255;
  }
  const buf = PNG.sync.write(png, { colorType: 2, inputColorType: 6, inputHasAlpha: true });
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
