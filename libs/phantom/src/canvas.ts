/**
 * One axial slice being painted, in the canonical display frame: column u runs toward patient Left,
 * row v toward Posterior (u = 0 is the patient's right, v = 0 the anterior edge). Millimetre
 * coordinates are LPS relative to the grid centre.
 */
export class SliceCanvas {
  readonly hu: Int16Array;
  readonly labels: Uint8Array;
  /** Per row: the painting window [clipLo, clipHi) of organs (inside the body wall); empty when lo >= hi. */
  readonly clipLo: Int32Array;
  readonly clipHi: Int32Array;
  private readonly cx: number;
  private readonly cy: number;

  constructor(
    readonly nx: number,
    readonly ny: number,
    readonly sx: number,
    readonly sy: number,
  ) {
    this.hu = new Int16Array(nx * ny);
    this.labels = new Uint8Array(nx * ny);
    this.clipLo = new Int32Array(ny);
    this.clipHi = new Int32Array(ny);
    this.cx = (nx - 1) / 2;
    this.cy = (ny - 1) / 2;
  }

  /** Resets the slice to `hu` everywhere, label 0, and opens the clip window to the full rows. */
  reset(hu: number): void {
    this.hu.fill(hu);
    this.labels.fill(0);
    this.clipLo.fill(0);
    this.clipHi.fill(this.nx);
  }

  /** LPS y (mm) of row v. */
  yOf(v: number): number {
    return (v - this.cy) * this.sy;
  }

  /** Rows whose centres lie in [y0, y1] mm, clamped to the grid (empty when first > last). */
  rowsIn(y0: number, y1: number): [number, number] {
    return [
      Math.max(0, Math.ceil(y0 / this.sy + this.cy)),
      Math.min(this.ny - 1, Math.floor(y1 / this.sy + this.cy)),
    ];
  }

  /** Columns whose centres lie in [x0, x1] mm, clamped to the grid. */
  colsIn(x0: number, x1: number): [number, number] {
    return [
      Math.max(0, Math.ceil(x0 / this.sx + this.cx)),
      Math.min(this.nx - 1, Math.floor(x1 / this.sx + this.cx)),
    ];
  }

  /** Paints columns [u0, u1] of row v (inclusive), restricted to the row's clip window when `clip`. */
  fillRow(v: number, u0: number, u1: number, hu: number, label: number, clip: boolean): void {
    const lo = clip ? Math.max(u0, this.clipLo[v]!) : u0;
    const hi = clip ? Math.min(u1 + 1, this.clipHi[v]!) : u1 + 1;
    if (lo >= hi) return;
    const base = v * this.nx;
    this.hu.fill(hu, base + lo, base + hi);
    this.labels.fill(label, base + lo, base + hi);
  }
}
