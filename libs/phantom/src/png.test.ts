import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';

import { PHANTOM_LABEL_NAMES } from './anatomy.js';
import { generatePhantom } from './generate.js';
import { labelColor, renderSlicePng } from './png.js';
import { previewIndexHtml } from './preview-html.js';
import { evenSliceIndices, phantomDisplaySlice } from './slices.js';

function decode(bytes: Uint8Array): PNG {
  return PNG.sync.read(Buffer.from(bytes));
}

describe('renderSlicePng', () => {
  it('windows grey values and blends label colours only where labels are', () => {
    const width = 4;
    const height = 2;
    const values = [-1000, -160, 41, 240, 1000, 41, 41, 41];
    const labels = [0, 0, 0, 0, 0, 1, 2, 0];
    const png = decode(
      renderSlicePng({ width, height, values, labels }, { window: [40, 400], overlayAlpha: 0.5 }),
    );
    expect([png.width, png.height]).toEqual([width, height]);
    const px = (i: number): number[] => Array.from(png.data.subarray(4 * i, 4 * i + 3));
    expect(px(0)).toEqual([0, 0, 0]);
    expect(px(1)).toEqual([0, 0, 0]);
    expect(px(2)).toEqual([128, 128, 128]); // (41 - (-160)) * 255 / 400 = 128.1
    expect(px(3)).toEqual([255, 255, 255]);
    expect(px(4)).toEqual([255, 255, 255]);
    expect(px(7)).toEqual([128, 128, 128]);
    for (const [i, l] of [
      [5, 1],
      [6, 2],
    ] as const) {
      const c = labelColor(l);
      expect(px(i)).toEqual(c.map((v) => Math.round(128 + 0.5 * (v - 128))));
    }
    expect(px(5)).not.toEqual(px(6));
  });

  it('gives the phantom labels distinct colours', () => {
    const colours = new Set(PHANTOM_LABEL_NAMES.map((_, l) => labelColor(l).join(',')));
    expect(colours.size).toBe(PHANTOM_LABEL_NAMES.length);
  });

  it('renders phantom slices radiologically: liver on the image left, spleen right, overlay coloured', () => {
    for (const orientation of ['LPS', 'RAS'] as const) {
      const p = generatePhantom({ size: [96, 80, 16], spacing: [4.3, 4.3, 10], orientation, seed: 2 });
      const k = evenSliceIndices(16, 6)[3]!;
      const slice = phantomDisplaySlice(p, k);
      const png = decode(renderSlicePng(slice));
      expect([png.width, png.height]).toEqual([96, 80]);
      const liver = PHANTOM_LABEL_NAMES.indexOf('liver');
      const spleen = PHANTOM_LABEL_NAMES.indexOf('spleen');
      let liverX = 0;
      let liverN = 0;
      let spleenX = 0;
      let spleenN = 0;
      let coloured = 0;
      let labelled = 0;
      for (let i = 0; i < 96 * 80; i++) {
        const l = slice.labels![i]!;
        const [r, g, b] = png.data.subarray(4 * i, 4 * i + 3);
        const grey = r === g && g === b;
        if (l === 0) expect(grey).toBe(true);
        else {
          labelled++;
          if (!grey) coloured++;
        }
        if (l === liver) [liverX, liverN] = [liverX + (i % 96), liverN + 1];
        if (l === spleen) [spleenX, spleenN] = [spleenX + (i % 96), spleenN + 1];
      }
      expect(labelled).toBeGreaterThan(100);
      expect(coloured).toBe(labelled);
      expect(liverN).toBeGreaterThan(0);
      expect(spleenN).toBeGreaterThan(0);
      expect(liverX / liverN).toBeLessThan(48);
      expect(spleenX / spleenN).toBeGreaterThan(48);
    }
  });

  it('spreads preview slices evenly', () => {
    expect(evenSliceIndices(64, 6)).toEqual([5, 16, 26, 37, 48, 58]);
    expect(evenSliceIndices(3, 6)).toEqual([0, 1, 2]);
    expect(evenSliceIndices(10, 1)).toEqual([5]);
  });
});

describe('previewIndexHtml', () => {
  it('lists the images and a legend with escaped names and label colours', () => {
    const html = previewIndexHtml('t<1>', [{ file: 'axial_001.png', slice: 1 }], [0, 5, 9], (v) =>
      v === 5 ? 'liver & <b>' : undefined,
    );
    expect(html).toContain('<img src="axial_001.png"');
    expect(html).toContain('5 liver &amp; &lt;b&gt;');
    expect(html).toContain('9 label 9');
    expect(html).toContain(`rgb(${labelColor(5).join(',')})`);
    expect(html).toContain('<title>t&lt;1&gt;</title>');
    expect(html).not.toContain('0 label 0');
  });
});
