import type { SliceCanvas } from './canvas.js';

/** A superellipse |dx/a|^p + |dy/b|^p <= 1 in an axial plane (mm, LPS, centred at x, y). */
export interface Superellipse {
  readonly x: number;
  readonly y: number;
  readonly a: number;
  readonly b: number;
  readonly p: number;
}

/** A superellipsoid |dx/a|^p + |dy/b|^p + |dz/c|^p <= 1 (mm, LPS); p = 2 is an ellipsoid. */
export interface Superellipsoid extends Superellipse {
  readonly z: number;
  readonly c: number;
}

/** How a shape is painted. */
export interface PaintStyle {
  readonly hu: number;
  readonly label: number;
  /** Only rows with y <= yMax (mm) are painted: used for air-fluid levels (anterior is up in a supine patient). */
  readonly yMax?: number;
  /** Restrict to the body interior (default true). */
  readonly clip?: boolean;
}

/** The axial cross-section of `e` at height z, or null when the plane misses it. */
export function sectionAt(e: Superellipsoid, z: number): Superellipse | null {
  const t = Math.abs((z - e.z) / e.c);
  if (t >= 1) return null;
  const s = Math.pow(1 - Math.pow(t, e.p), 1 / e.p);
  return { x: e.x, y: e.y, a: e.a * s, b: e.b * s, p: e.p };
}

/** `s` shrunk by `mm` on every side (null when nothing is left). */
export function inset(s: Superellipse, mm: number): Superellipse | null {
  return s.a > mm && s.b > mm ? { ...s, a: s.a - mm, b: s.b - mm } : null;
}

/** Fills a superellipse, one analytic row span at a time (no per-voxel inside test). */
export function fillSuperellipse(c: SliceCanvas, s: Superellipse | null, style: PaintStyle): void {
  if (!s) return;
  const [v0, v1] = c.rowsIn(s.y - s.b, Math.min(s.y + s.b, style.yMax ?? Infinity));
  const clip = style.clip ?? true;
  for (let v = v0; v <= v1; v++) {
    const t = Math.abs((c.yOf(v) - s.y) / s.b);
    if (t > 1) continue;
    const w = s.a * Math.pow(1 - Math.pow(t, s.p), 1 / s.p);
    const [u0, u1] = c.colsIn(s.x - w, s.x + w);
    c.fillRow(v, u0, u1, style.hu, style.label, clip);
  }
}

/** Fills the axis-aligned rectangle [x0, x1] x [y0, y1] mm. */
export function fillRect(
  c: SliceCanvas,
  x0: number,
  x1: number,
  y0: number,
  y1: number,
  style: PaintStyle,
): void {
  const [v0, v1] = c.rowsIn(y0, y1);
  const [u0, u1] = c.colsIn(x0, x1);
  for (let v = v0; v <= v1; v++) c.fillRow(v, u0, u1, style.hu, style.label, style.clip ?? true);
}
