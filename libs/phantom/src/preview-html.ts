import { labelColor } from './png.js';

/** One rendered preview image, named relative to the HTML page. */
export interface PreviewEntry {
  readonly file: string;
  /** Canonical slice index (0 = most inferior). */
  readonly slice: number;
}

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/**
 * A self-contained `index.html` showing the preview PNGs and a colour legend of `labels`
 * (value -> name; values without a name are shown as `label N`). Only label values listed are shown.
 */
export function previewIndexHtml(
  title: string,
  entries: readonly PreviewEntry[],
  labels: readonly number[],
  labelName: (value: number) => string | undefined,
): string {
  const legend = labels
    .filter((v) => v > 0 && v < 256)
    .map((v) => {
      const [r, g, b] = labelColor(v);
      const name = escapeHtml(labelName(v) ?? `label ${v}`);
      return `<li><span class="sw" style="background:rgb(${r},${g},${b})"></span>${v} ${name}</li>`;
    })
    .join('\n');
  const figures = entries
    .map(
      (e) =>
        `<figure><img src="${escapeHtml(e.file)}" alt="axial slice ${e.slice}"><figcaption>slice ${e.slice}</figcaption></figure>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body{background:#111;color:#ddd;font:14px sans-serif;margin:1em}
figure{display:inline-block;margin:.5em}
img{width:384px;image-rendering:pixelated}
ul{list-style:none;padding:0;columns:3}
.sw{display:inline-block;width:1em;height:1em;margin-right:.4em;vertical-align:middle}
</style></head><body>
<h1>${escapeHtml(title)}</h1>
<p>Axial slices, radiological convention: the patient's right is on the image left, anterior is up.</p>
${figures}
<h2>Labels</h2>
<ul>
${legend}
</ul>
</body></html>
`;
}
