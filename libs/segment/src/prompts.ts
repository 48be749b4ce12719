import { CuriaError } from '@curia/errors';

/** A click on a canonical slice, in canonical pixel coordinates (row, col may be fractional). */
export interface CanonicalPoint {
  readonly slice: number;
  readonly row: number;
  readonly col: number;
  readonly positive: boolean;
}

/** An axis-aligned box in canonical coordinates (inclusive bounds, fractional allowed). */
export interface CanonicalBox {
  readonly slices: readonly [number, number];
  readonly rows: readonly [number, number];
  readonly cols: readonly [number, number];
}

/** Options of {@link segmentByClicks}. */
export interface ClickOptions {
  /** Canonical slices and their pixel size. */
  readonly slices: number;
  readonly rows: number;
  readonly cols: number;
  /** Token grid side G. */
  readonly grid: number;
  /** Token width D. */
  readonly dim: number;
  /** Patch tokens of canonical slice s (G·G × D); called for the clicked slices and the ones propagated to. */
  readonly tokens: (slice: number) => Float32Array;
  /** Extend the object to neighbouring slices while it stays similar (default true). */
  readonly propagate?: boolean;
  /**
   * Where between a slice's mean similarity to the object (0) and a perfect match (1) a token must
   * lie to belong to the object (default 0.5).
   */
  readonly threshold?: number;
}

/** The object, per canonical slice it covers: a G·G token mask (1 = object). */
export type ClickResult = Map<number, Uint8Array>;

/**
 * A slice's tokens centred on the slice's mean token, then scaled to unit length: a backbone's
 * tokens share a large common component (random-weight backbones above all), which would make
 * every token look alike to a plain cosine.
 */
function normalised(tokens: Float32Array, dim: number): Float32Array {
  const n = tokens.length / dim;
  const mean = new Float64Array(dim);
  for (let t = 0; t < n; t++) for (let j = 0; j < dim; j++) mean[j]! += tokens[t * dim + j]!;
  for (let j = 0; j < dim; j++) mean[j]! /= n;
  const out = new Float32Array(tokens.length);
  for (let t = 0; t < n; t++) {
    let norm = 0;
    for (let j = 0; j < dim; j++) {
      const v = tokens[t * dim + j]! - mean[j]!;
      out[t * dim + j] = v;
      norm += v * v;
    }
    const inv = 1 / (Math.sqrt(norm) || 1);
    for (let j = 0; j < dim; j++) out[t * dim + j]! *= inv;
  }
  return out;
}

function similarity(unit: Float32Array, proto: Float32Array, dim: number): Float32Array {
  const n = unit.length / dim;
  const out = new Float32Array(n);
  for (let t = 0; t < n; t++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += unit[t * dim + j]! * proto[j]!;
    out[t] = s;
  }
  return out;
}

/** Unit-length mean of the given tokens of a normalised slice. */
function prototype(unit: Float32Array, tokens: Iterable<number>, dim: number): Float32Array {
  const p = new Float32Array(dim);
  for (const t of tokens) for (let j = 0; j < dim; j++) p[j]! += unit[t * dim + j]!;
  let n = 0;
  for (let j = 0; j < dim; j++) n += p[j]! ** 2;
  const inv = 1 / (Math.sqrt(n) || 1);
  for (let j = 0; j < dim; j++) p[j]! *= inv;
  return p;
}

/** Tokens reachable from `seeds` through 4-connected tokens where `allowed` is set. */
function connected(allowed: Uint8Array, seeds: Iterable<number>, g: number): Uint8Array {
  const out = new Uint8Array(g * g);
  const stack: number[] = [];
  for (const s of seeds) {
    if (allowed[s] && !out[s]) {
      out[s] = 1;
      stack.push(s);
    }
  }
  while (stack.length) {
    const t = stack.pop()!;
    const y = Math.floor(t / g);
    const x = t % g;
    for (const [dy, dx] of [
      [-1, 0],
      [1, 0],
      [0, -1],
      [0, 1],
    ] as const) {
      const yy = y + dy;
      const xx = x + dx;
      if (yy < 0 || yy >= g || xx < 0 || xx >= g) continue;
      const u = yy * g + xx;
      if (allowed[u] && !out[u]) {
        out[u] = 1;
        stack.push(u);
      }
    }
  }
  return out;
}

/**
 * Segments one object from point prompts without training: on each clicked slice, tokens more
 * similar (cosine, patch tokens) to the positive clicks than to the negative ones, and above the
 * slice's adaptive threshold, form the object, kept connected to the positive clicks. From there the
 * object is propagated slice by slice while tokens connected to its previous footprint stay similar
 * to it. Boxes restrict the object to their extent. Works with any backbone.
 */
export function segmentByClicks(
  points: readonly CanonicalPoint[],
  boxes: readonly CanonicalBox[],
  o: ClickOptions,
): ClickResult {
  const g = o.grid;
  const d = o.dim;
  const tau = o.threshold ?? 0.5;
  if (!points.some((p) => p.positive)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      'points: at least one positive click is needed to say which object to segment',
    );
  }
  const tokenOf = (row: number, col: number): number => {
    const ty = Math.min(g - 1, Math.max(0, Math.floor(((row + 0.5) * g) / o.rows)));
    const tx = Math.min(g - 1, Math.max(0, Math.floor(((col + 0.5) * g) / o.cols)));
    return ty * g + tx;
  };
  const inBoxes = (s: number): Uint8Array => {
    const m = new Uint8Array(g * g).fill(boxes.length ? 0 : 1);
    for (const b of boxes) {
      if (s < Math.floor(b.slices[0]) || s > Math.ceil(b.slices[1])) continue;
      for (let t = 0; t < g * g; t++) {
        const r = ((Math.floor(t / g) + 0.5) * o.rows) / g - 0.5;
        const c = (((t % g) + 0.5) * o.cols) / g - 0.5;
        if (
          r >= b.rows[0] - o.rows / g &&
          r <= b.rows[1] + o.rows / g &&
          c >= b.cols[0] - o.cols / g &&
          c <= b.cols[1] + o.cols / g
        )
          m[t] = 1;
      }
    }
    return m;
  };
  const unitCache = new Map<number, Float32Array>();
  const unitOf = (s: number): Float32Array => {
    let u = unitCache.get(s);
    if (!u) {
      const raw = o.tokens(s);
      if (raw.length !== g * g * d)
        throw new CuriaError('INTERNAL', `slice ${s}: tokens must be ${g}×${g}×${d}`);
      unitCache.set(s, (u = normalised(raw, d)));
    }
    return u;
  };
  // Prototypes from every clicked slice.
  const pos: Float32Array[] = [];
  const neg: Float32Array[] = [];
  for (const p of points)
    (p.positive ? pos : neg).push(prototype(unitOf(p.slice), [tokenOf(p.row, p.col)], d));
  const positive = prototype(
    new Float32Array(pos.flatMap((v) => Array.from(v))),
    pos.map((_, i) => i),
    d,
  );
  /** The object on slice s: tokens closer to the object than to any negative click, above the threshold, connected to seeds. */
  const objectOn = (s: number, proto: Float32Array, seeds: Iterable<number>): Uint8Array => {
    const unit = unitOf(s);
    const sim = similarity(unit, proto, d);
    let mean = 0;
    for (const v of sim) mean += v;
    mean /= sim.length;
    const cut = mean + tau * (1 - mean);
    const negSim = neg.map((n) => similarity(unit, n, d));
    const box = inBoxes(s);
    const allowed = new Uint8Array(g * g);
    for (let t = 0; t < g * g; t++) {
      const beaten = negSim.some((ns) => ns[t]! >= sim[t]!);
      allowed[t] = box[t] && sim[t]! >= cut && !beaten ? 1 : 0;
    }
    return connected(allowed, seeds, g);
  };
  const result: ClickResult = new Map();
  const seedSlices = [...new Set(points.filter((p) => p.positive).map((p) => p.slice))].sort((a, b) => a - b);
  for (const s of seedSlices) {
    const seeds = points.filter((p) => p.positive && p.slice === s).map((p) => tokenOf(p.row, p.col));
    // A positive click always belongs to the object, whatever its neighbourhood says.
    const mask = objectOn(s, positive, seeds);
    for (const t of seeds) mask[t] = 1;
    result.set(s, mask);
  }
  if (o.propagate === false) return result;
  for (const s0 of seedSlices) {
    for (const step of [-1, 1]) {
      let prev = result.get(s0)!;
      for (let s = s0 + step; s >= 0 && s < o.slices; s += step) {
        if (result.has(s)) break;
        const footprint: number[] = [];
        for (let t = 0; t < g * g; t++) if (prev[t]) footprint.push(t);
        const proto = prototype(unitOf(s - step), footprint, d);
        const next = objectOn(s, proto, footprint);
        let size = 0;
        for (const v of next) size += v;
        if (size === 0 || size < 0.2 * footprint.length) break;
        result.set(s, next);
        prev = next;
      }
    }
  }
  return result;
}
