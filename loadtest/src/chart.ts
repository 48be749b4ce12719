import { PNG } from 'pngjs';

import { CHAR_HEIGHT, rasterizeText, textWidth } from './pixel-font.js';

/** An RGB colour. */
export type Rgb = readonly [number, number, number];

/** One line of a panel. NaN y values break the line. */
export interface Series {
  readonly label: string;
  readonly color: Rgb;
  readonly points: readonly (readonly [number, number])[];
}

/** One chart panel (its own y axis; panels are stacked and share the page width). */
export interface Panel {
  readonly title: string;
  readonly xLabel: string;
  readonly series: readonly Series[];
  /** Logarithmic y axis (for latency spanning decades). */
  readonly logY?: boolean;
}

/** Line colours for charts. */
export const COLORS = {
  blue: [31, 119, 180],
  orange: [255, 127, 14],
  green: [44, 160, 44],
  red: [214, 39, 40],
  purple: [148, 103, 189],
  grey: [127, 127, 127],
} as const satisfies Record<string, Rgb>;

const WIDTH = 900;
const PANEL_HEIGHT = 300;
const MARGIN = { left: 70, right: 20, top: 34, bottom: 40 };
const TEXT_SCALE = 2;

class Canvas {
  readonly png: PNG;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.png = new PNG({ width, height });
    this.png.data.fill(255);
  }

  set(x: number, y: number, [r, g, b]: Rgb): void {
    const xi = Math.round(x);
    const yi = Math.round(y);
    if (xi < 0 || yi < 0 || xi >= this.width || yi >= this.height) return;
    const o = (yi * this.width + xi) * 4;
    this.png.data[o] = r;
    this.png.data[o + 1] = g;
    this.png.data[o + 2] = b;
    this.png.data[o + 3] = 255;
  }

  /** A line `thickness` pixels wide (Bresenham, stamped). */
  line(x0: number, y0: number, x1: number, y1: number, color: Rgb, thickness = 1): void {
    const steps = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    const h = Math.floor(thickness / 2);
    for (let i = 0; i <= steps; i++) {
      const x = x0 + ((x1 - x0) * i) / steps;
      const y = y0 + ((y1 - y0) * i) / steps;
      for (let dy = -h; dy <= thickness - 1 - h; dy++)
        for (let dx = -h; dx <= thickness - 1 - h; dx++) this.set(x + dx, y + dy, color);
    }
  }

  text(s: string, x: number, y: number, color: Rgb = [0, 0, 0]): void {
    rasterizeText(s, x, y, TEXT_SCALE, (px, py) => this.set(px, py, color));
  }
}

/** A compact tick label: 1234 → 1.2K, 0.05 → 0.05. */
export function formatTick(v: number): string {
  const a = Math.abs(v);
  if (a < 0.005) return '0';
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(2)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(2)}K`;
  if (a >= 10 || a === 0) return String(Math.round(v));
  return String(+v.toPrecision(2));
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function drawPanel(canvas: Canvas, panel: Panel, top: number): void {
  const x0 = MARGIN.left;
  const x1 = canvas.width - MARGIN.right;
  const y0 = top + MARGIN.top;
  const y1 = top + PANEL_HEIGHT - MARGIN.bottom;
  const finite = panel.series.flatMap((s) =>
    s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)),
  );
  const xs = finite.map(([x]) => x);
  const ys = finite.map(([, y]) => y);
  const xMin = xs.length ? Math.min(...xs) : 0;
  const xMax = xs.length && Math.max(...xs) > xMin ? Math.max(...xs) : xMin + 1;
  const log = panel.logY === true && ys.some((y) => y > 0);
  const positive = ys.filter((y) => y > 0);
  const yMinLog = log ? 10 ** Math.floor(Math.log10(Math.min(...positive))) : 0;
  const yMaxLog = log ? 10 ** Math.ceil(Math.log10(Math.max(...positive) * 1.01)) : 0;
  const yMax = log ? yMaxLog : niceMax(ys.length ? Math.max(...ys) : 1);
  const yMin = log ? yMinLog : 0;
  const sx = (x: number): number => x0 + ((x - xMin) / (xMax - xMin)) * (x1 - x0);
  const sy = (y: number): number =>
    log
      ? y1 -
        ((Math.log10(Math.max(y, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin) || 1)) *
          (y1 - y0)
      : y1 - ((y - yMin) / (yMax - yMin)) * (y1 - y0);
  const grid: Rgb = [225, 225, 225];
  const ticks = log
    ? Array.from({ length: Math.round(Math.log10(yMax / yMin)) + 1 }, (_, i) => yMin * 10 ** i)
    : [0, 0.25, 0.5, 0.75, 1].map((f) => yMin + f * (yMax - yMin));
  for (const t of ticks) {
    canvas.line(x0, sy(t), x1, sy(t), grid);
    const label = formatTick(t);
    canvas.text(label, x0 - 6 - textWidth(label, TEXT_SCALE), sy(t) - CHAR_HEIGHT);
  }
  for (let i = 0; i <= 4; i++) {
    const xv = xMin + (i / 4) * (xMax - xMin);
    canvas.line(sx(xv), y0, sx(xv), y1, grid);
    const label = formatTick(xv);
    canvas.text(label, sx(xv) - textWidth(label, TEXT_SCALE) / 2, y1 + 6);
  }
  canvas.line(x0, y0, x0, y1, [0, 0, 0]);
  canvas.line(x0, y1, x1, y1, [0, 0, 0]);
  canvas.text(panel.title, x0, top + 8);
  canvas.text(panel.xLabel, x1 - textWidth(panel.xLabel, TEXT_SCALE), y1 + 24);
  let legendX = x1;
  for (const s of [...panel.series].reverse()) {
    legendX -= textWidth(s.label, TEXT_SCALE) + 30;
    canvas.line(legendX, top + 13, legendX + 16, top + 13, s.color, 3);
    canvas.text(s.label, legendX + 22, top + 8, s.color);
  }
  for (const s of panel.series) {
    let prev: readonly [number, number] | null = null;
    for (const p of s.points) {
      const ok = Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!log || p[1] > 0);
      if (!ok) {
        prev = null;
        continue;
      }
      if (prev) canvas.line(sx(prev[0]), sy(prev[1]), sx(p[0]), sy(p[1]), s.color, 2);
      else canvas.line(sx(p[0]) - 1, sy(p[1]), sx(p[0]) + 1, sy(p[1]), s.color, 3);
      prev = p;
    }
  }
}

/** Renders stacked line-chart panels to a PNG (900 px wide, 300 px per panel). */
export function renderChart(panels: readonly Panel[]): Buffer {
  const canvas = new Canvas(WIDTH, PANEL_HEIGHT * Math.max(1, panels.length));
  panels.forEach((p, i) => drawPanel(canvas, p, i * PANEL_HEIGHT));
  return PNG.sync.write(canvas.png);
}
