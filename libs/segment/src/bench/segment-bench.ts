/**
 * Segmentation benchmark for issue #15 on the shared TotalSegmentator CT (122×101×30, 3 mm), all
 * engines in this process (the service path is tested elsewhere). Run:
 * `npm run bench:segment [-- [--quick] [--curia-b] [--json <file>]]`. The L2 searches take most
 * of the 10–20 min on the 2-core dev VM; `--quick` (default L2 only) about 3 min; `--curia-b` adds
 * about 20 min.
 *
 * 1. Dice. Every canonical slice is preprocessed as the services do (`preprocessToTensor`) and
 *    embedded with the default demo bundle (post-LayerNorm patch tokens, CLS dropped). Five labelled
 *    slices, evenly spaced among the slices where the organs appear (rule below), fit every method;
 *    the other slices are the test set (3D Dice over them, canonical pixels, per organ). Methods:
 *    - token probe, linear: `fitSegmenter` kind 'linear' on the demo patch tokens;
 *    - token probe, 3×3: kind 'conv3x3' on the same tokens;
 *    - pixel-patch probe: the same 'linear' fit with the raw 16×16 preprocessed pixels of each patch
 *      as the "token" (256 features);
 *    - intensity threshold: per organ the 5th–95th percentile HU interval of its pixels on the
 *      labelled slices; a pixel takes the organ whose interval holds its HU, the narrowest interval
 *      winning ties; none → background. Also with each organ cut to its largest 3D 6-connected
 *      component over the whole volume's prediction.
 *    - control (not a goal): the same 'linear' fit on where a token is and nothing of the image
 *      (one-hot row + column, 64 features). ViT tokens carry position embeddings and, in one
 *      patient, an organ's place predicts it; this shows how much of a probe's score that explains.
 *    Kidneys are fitted as two classes (right, left) and reported per side and merged; the
 *    headline mean is over the issue's four organs with the kidneys merged. Each probe's L2 is
 *    picked by the fit's own leave-one-slice-out CV Dice on the five labelled slices (never the
 *    test slices; see `probe`; `--quick` keeps the default). Scores are not smoothed across slices.
 * 2. Time: embedding per slice (demo bundle, CPU, batch 8 as the Embed service batches) vs the head
 *    per slice (`SegmenterRunner.scores` on ORT, batch 4 as `VolumeSegmentation` scores) and,
 *    separately, sampling scores back to canonical pixels (`TokenSampler`), in interleaved rounds
 *    over the same 30 slices. Goal: head ≤ 10% of embedding.
 * 3. Click-to-mask latency with a warm cache (every slice's tokens in memory, as the Segment
 *    service's token cache holds them for a second click): `segmentByClicks` from one positive
 *    click at the liver's centroid on its middle slice, with propagation, plus sampling every
 *    covered slice to pixels; median of 20 runs, and the Dice of that mask vs the liver.
 *
 * `--curia-b` repeats 1–3 with a random-weight curia-b-sized bundle (768 wide, 12 layers; built
 * once into the Curia cache, which takes minutes the first time). Demo and curia-b weights are
 * RANDOM: these Dice figures describe random features, not Curia.
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';

import {
  EmbedEngine,
  ensureBenchBundle,
  ensureDefaultBundle,
  patchTokens,
  type EngineInfo,
  type TokenLayout,
} from '@curia/model';
import { cpuBudget, sharedDir } from '@curia/tensors';
import { openVolume, preprocessToTensor, TOTALSEGMENTATOR_ORGANS } from '@curia/volume';

import { ClassTable } from '../classes.js';
import {
  fitSegmenter,
  SEGMENT_FIT_DEFAULTS,
  type FitSegmenterResult,
  type LabelledSlice,
} from '../fit/fit-segmenter.js';
import { tokenGridSize, type ModelGrid } from '../grid.js';
import { segmentByClicks } from '../prompts.js';
import { SegmenterRunner } from '../runner.js';
import { TokenSampler } from '../sample.js';
import type { SegmenterKind, SegmenterWeights } from '../segmenter.js';
import {
  diceOver,
  evenlySpaced,
  fitIntervals,
  largestComponents,
  pixelPatchTokens,
  positionTokens,
  thresholdClasses,
  type Interval,
} from './methods.js';

const argv = process.argv.slice(2);
const CURIA_B = argv.includes('--curia-b');
const QUICK = argv.includes('--quick');
const jsonAt = argv.indexOf('--json');
const JSON_OUT = jsonAt >= 0 ? argv[jsonAt + 1] : undefined;

/** Organs of the issue, as labels_total.json names them (kidneys fitted as two classes). */
const ORGANS = TOTALSEGMENTATOR_ORGANS;
const TABLE = new ClassTable(ORGANS);
const K = TABLE.size;
/** Rows of the Dice tables: class indices each counts as the organ. Kidneys: each side and merged. */
const REPORT: readonly { readonly name: string; readonly classes: readonly number[] }[] = [
  { name: 'spleen', classes: [1] },
  { name: 'kidney_right', classes: [2] },
  { name: 'kidney_left', classes: [3] },
  { name: 'kidneys (merged)', classes: [2, 3] },
  { name: 'liver', classes: [4] },
  { name: 'stomach', classes: [5] },
];
/** The headline mean: the issue's four organs, kidneys merged. */
const MEAN4 = ['spleen', 'kidneys (merged)', 'liver', 'stomach'];
/** The mean over the five fitted classes. */
const MEAN5 = ['spleen', 'kidney_right', 'kidney_left', 'liver', 'stomach'];
const TRAIN_SLICES = 5;
/** Decimal exponents of the L2 penalty: the fit's default, and the range the CV walk may explore. */
const L2_START = Math.log10(SEGMENT_FIT_DEFAULTS.l2);
const L2_RANGE = [-6, 2] as const;
/** The Embed service's default largest batch, and the slices `VolumeSegmentation` scores per call. */
const EMBED_BATCH = 8;
const HEAD_BATCH = 4;
const CLICK_RUNS = 20;
const HEAD_GOAL = 0.1;
const RATIO_GOAL = 1.5;

const out = (line = ''): void => void process.stdout.write(`${line}\n`);
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (x: number, d = 3): string => (Number.isFinite(x) ? x.toFixed(d) : '  –  ');
const ms = (x: number): string => `${x.toFixed(x < 10 ? 2 : 1)} ms`;

/** The study: canonical HU, labels and preprocessed pixels of every slice. */
interface Study {
  readonly slices: number;
  readonly rows: number;
  readonly cols: number;
  /** Canonical HU per slice (rows × cols). */
  readonly hu: Float64Array[];
  /** Canonical label values per slice. */
  readonly labels: Uint8Array[];
  /** Class index (TABLE) per canonical pixel per slice. */
  readonly truth: Uint8Array[];
  /** Preprocessed 512×512 pixels per canonical slice. */
  readonly pixels: Float32Array[];
  readonly imageSize: number;
}

async function loadStudy(dir: string): Promise<Study> {
  const names = JSON.parse(readFileSync(join(dir, 'labels_total.json'), 'utf8')) as Record<string, string>;
  for (const o of ORGANS) {
    if (names[String(o.value)] !== o.name)
      throw new Error(`labels_total.json: ${o.value} is '${names[String(o.value)]}', not '${o.name}'`);
  }
  const ct = await openVolume({ kind: 'path', path: join(dir, 'example_ct_sm.nii.gz') });
  const seg = await openVolume({ kind: 'path', path: join(dir, 'example_seg.nii.gz') });
  const [slices, rows, cols] = ct.geometry.canonicalDims;
  if (seg.geometry.canonicalDims.some((d, i) => d !== ct.geometry.canonicalDims[i]))
    throw new Error('example_seg is not on the CT grid');
  const hu: Float64Array[] = [];
  const labels: Uint8Array[] = [];
  const truth: Uint8Array[] = [];
  for (let s = 0; s < slices; s++) {
    hu.push(Float64Array.from(await ct.readCanonicalSlice(s)));
    const l = Uint8Array.from(await seg.readCanonicalSlice(s), (v) => Math.round(v));
    labels.push(l);
    truth.push(Uint8Array.from(l, (v) => TABLE.indexOf(v)));
  }
  const pre = await preprocessToTensor(ct);
  const [, , h, w] = pre.shape;
  const pixels: Float32Array[] = new Array<Float32Array>(slices);
  pre.indices.forEach((k, i) => (pixels[k] = pre.pixelValues.subarray(i * h * w, (i + 1) * h * w)));
  return { slices, rows, cols, hu, labels, truth, pixels, imageSize: h };
}

/**
 * The labelled slices: among the canonical slices where any organ appears (n of them, in order),
 * the ones at positions ⌊(i + ½)·n/5⌋, i = 0..4 — evenly spaced, no randomness.
 */
function chooseTraining(study: Study): { train: number[]; test: number[]; organSlices: number[] } {
  const organSlices = study.truth.flatMap((t, s) => (t.some((v) => v > 0) ? [s] : []));
  const train = evenlySpaced(organSlices, TRAIN_SLICES);
  const test = Array.from({ length: study.slices }, (_, s) => s).filter((s) => !train.includes(s));
  return { train, test, organSlices };
}

/** 3D Dice per report row over a set of slices, and the two means. */
function diceOf(pred: readonly Uint8Array[], study: Study, slices: readonly number[]): Map<string, number> {
  const res = new Map<string, number>();
  for (const r of REPORT) res.set(r.name, diceOver(pred, study.truth, slices, r.classes));
  const mean = (names: readonly string[]) => names.reduce((s, n) => s + res.get(n)!, 0) / names.length;
  res.set('mean (4 organs)', mean(MEAN4));
  res.set('mean (5 classes)', mean(MEAN5));
  return res;
}

/** The study's preprocessed slices in the Embed service's batches (8 slices). */
function embedBatches(engine: EmbedEngine, study: Study): { n: number; px: Float32Array }[] {
  const per = engine.pixelsPerSlice;
  const batches: { n: number; px: Float32Array }[] = [];
  for (let b = 0; b < study.slices; b += EMBED_BATCH) {
    const n = Math.min(EMBED_BATCH, study.slices - b);
    const px = new Float32Array(n * per);
    for (let i = 0; i < n; i++) px.set(study.pixels[b + i]!, i * per);
    batches.push({ n, px });
  }
  return batches;
}

/** Post-LayerNorm patch tokens (CLS and registers dropped) of every canonical slice. */
async function embedTokens(
  engine: EmbedEngine,
  batches: readonly { n: number; px: Float32Array }[],
): Promise<{ tokens: Float32Array[]; dim: number }> {
  const tokens: Float32Array[] = [];
  let dim = 0;
  for (const b of batches) {
    const r = await engine.run(b.px, b.n, { outputs: ['last_hidden_state'] });
    const layout: TokenLayout = {
      tokens: r.tokens,
      hidden: r.hidden,
      numRegisterTokens: r.numRegisterTokens,
    };
    for (let i = 0; i < b.n; i++) tokens.push(patchTokens(r.lastHiddenState!, layout, i).slice());
    dim = r.hidden;
  }
  return { tokens, dim };
}

interface ProbeResult {
  readonly name: string;
  readonly kind: SegmenterKind;
  readonly dim: number;
  readonly l2: number;
  /** The chosen L2 is at an end of L2_RANGE (the CV was still rising there). */
  readonly atEdge: boolean;
  /** Mean CV Dice over the classes, per L2 tried. */
  readonly cv: readonly { l2: number; meanCvDice: number }[];
  readonly fit: FitSegmenterResult;
  readonly fitSeconds: number;
  /** Class index per canonical pixel, per slice (every slice). */
  readonly pred: Uint8Array[];
}

/**
 * Fits one probe. Its L2 is chosen by the fit's own leave-one-slice-out CV on the labelled slices
 * (mean CV Dice over the classes): from the default 1e-3, one decade at a time towards whichever
 * neighbour scores higher, while the score keeps rising (10^L2_RANGE[0] .. 10^L2_RANGE[1]); the
 * final head is the fit on all labelled slices at that L2. `--quick`: the default L2 only.
 */
async function probe(
  name: string,
  kind: SegmenterKind,
  tokens: readonly Float32Array[],
  dim: number,
  study: Study,
  train: readonly number[],
  model: ModelGrid,
): Promise<ProbeResult> {
  const g = tokenGridSize(model);
  const labelled: LabelledSlice[] = train.map((s) => ({
    tokens: tokens[s]!,
    labels: study.labels[s]!,
    rows: study.rows,
    cols: study.cols,
  }));
  const t0 = performance.now();
  const tried = new Map<number, { score: number; fit: FitSegmenterResult }>();
  const at = async (e: number): Promise<number> => {
    let r = tried.get(e);
    if (!r) {
      const fit = await fitSegmenter(labelled, { kind, table: TABLE, model, dim, l2: 10 ** e });
      const vals = [...fit.cvDice.values()];
      r = { score: vals.reduce((a, b) => a + b, 0) / Math.max(1, vals.length), fit };
      tried.set(e, r);
    }
    return r.score;
  };
  let e = L2_START;
  let score = await at(e);
  if (!QUICK) {
    const [lo, hi] = L2_RANGE;
    const up = e < hi ? await at(e + 1) : -Infinity;
    const down = e > lo ? await at(e - 1) : -Infinity;
    const step = up > score && up >= down ? 1 : down > score ? -1 : 0;
    while (step !== 0 && e + step >= lo && e + step <= hi) {
      const next = await at(e + step);
      if (!(next > score)) break;
      e += step;
      score = next;
    }
  }
  const fitSeconds = (performance.now() - t0) / 1000;
  const cv = [...tried].sort((a, b) => a[0] - b[0]).map(([x, r]) => ({ l2: 10 ** x, meanCvDice: r.score }));
  const best = tried.get(e)!;
  const pred = await predict(best.fit.head, tokens, study, g);
  const atEdge = !QUICK && (e === L2_RANGE[0] || e === L2_RANGE[1]);
  return { name, kind, dim, l2: 10 ** e, atEdge, cv, fit: best.fit, fitSeconds, pred };
}

/** Class index per canonical pixel of every slice: ORT scores at batch 4, sampled back as in the service. */
async function predict(
  head: SegmenterWeights,
  tokens: readonly Float32Array[],
  study: Study,
  g: number,
): Promise<Uint8Array[]> {
  const runner = await SegmenterRunner.create(head, { grid: g });
  const sampler = new TokenSampler(study.rows, study.cols, g, K);
  const pred: Uint8Array[] = [];
  try {
    for (let b = 0; b < study.slices; b += HEAD_BATCH) {
      const n = Math.min(HEAD_BATCH, study.slices - b);
      const scores = await runner.scores(batchOf(tokens, b, n), n);
      const plane = K * g * g;
      for (let i = 0; i < n; i++)
        pred.push(sampler.sample(scores.subarray(i * plane, (i + 1) * plane), 'logits').classes);
    }
  } finally {
    await runner.close();
  }
  return pred;
}

function batchOf(tokens: readonly Float32Array[], first: number, n: number): Float32Array {
  const per = tokens[first]!.length;
  const all = new Float32Array(n * per);
  for (let i = 0; i < n; i++) all.set(tokens[first + i]!, i * per);
  return all;
}

/**
 * The threshold baseline: per class the 5th–95th percentile HU interval of its pixels on the
 * labelled slices; each pixel of every slice classified by `thresholdClasses` (narrowest interval
 * wins); and the same cut to each class's largest 3D component over the whole volume.
 */
function thresholdBaseline(
  study: Study,
  train: readonly number[],
): { intervals: Interval[]; plain: Uint8Array[]; lcc: Uint8Array[] } {
  const intervals = fitIntervals(study.hu, study.truth, train, K, 5, 95);
  const plain = study.hu.map((h) => thresholdClasses(h, intervals));
  return { intervals, plain, lcc: largestComponents(plain, study.rows, study.cols, K) };
}

/** Per-slice medians (ms) of the interleaved timing rounds, and of each round's head / embedding ratio. */
interface Timing {
  readonly embedMs: number;
  readonly heads: readonly {
    readonly name: string;
    readonly headMs: number;
    readonly sampleMs: number;
    /** Median over rounds of head / embedding, and of (head + sampling) / embedding. */
    readonly headRatio: number;
    readonly headSampleRatio: number;
  }[];
}

/**
 * Times, per round over every slice of the study: embedding (batch 8), then each head on ORT
 * (batch 4, as `VolumeSegmentation` scores) and sampling its scores to canonical pixels. Rounds
 * interleave the three so a busy shared machine weighs on all of them alike; one warm-up round.
 */
async function timeInterleaved(
  engine: EmbedEngine,
  batches: readonly { n: number; px: Float32Array }[],
  heads: readonly { name: string; head: SegmenterWeights }[],
  tokens: readonly Float32Array[],
  study: Study,
  g: number,
  rounds: number,
): Promise<Timing> {
  const runners = await Promise.all(heads.map((h) => SegmenterRunner.create(h.head, { grid: g })));
  const sampler = new TokenSampler(study.rows, study.cols, g, K);
  const headBatches: { n: number; t: Float32Array }[] = [];
  for (let b = 0; b < study.slices; b += HEAD_BATCH) {
    const n = Math.min(HEAD_BATCH, study.slices - b);
    headBatches.push({ n, t: batchOf(tokens, b, n) });
  }
  const plane = K * g * g;
  const embed: number[] = [];
  const per = heads.map(() => ({
    head: [] as number[],
    sample: [] as number[],
    r1: [] as number[],
    r2: [] as number[],
  }));
  try {
    for (let round = 0; round <= rounds; round++) {
      const t0 = performance.now();
      for (const b of batches) await engine.run(b.px, b.n, { outputs: ['last_hidden_state'] });
      const e = (performance.now() - t0) / study.slices;
      for (const [h, runner] of runners.entries()) {
        const scores: Float32Array[] = [];
        const t1 = performance.now();
        for (const b of headBatches) {
          const sc = await runner.scores(b.t, b.n);
          for (let i = 0; i < b.n; i++) scores.push(sc.subarray(i * plane, (i + 1) * plane));
        }
        const t2 = performance.now();
        for (const sc of scores) sampler.sample(sc, 'logits');
        const t3 = performance.now();
        if (round === 0) continue;
        const x = per[h]!;
        const hm = (t2 - t1) / study.slices;
        const sm = (t3 - t2) / study.slices;
        x.head.push(hm);
        x.sample.push(sm);
        x.r1.push(hm / e);
        x.r2.push((hm + sm) / e);
      }
      if (round > 0) embed.push(e);
    }
  } finally {
    for (const r of runners) await r.close();
  }
  return {
    embedMs: median(embed),
    heads: heads.map((h, i) => ({
      name: h.name,
      headMs: median(per[i]!.head),
      sampleMs: median(per[i]!.sample),
      headRatio: median(per[i]!.r1),
      headSampleRatio: median(per[i]!.r2),
    })),
  };
}

interface ClickFigures {
  readonly slice: number;
  readonly row: number;
  readonly col: number;
  readonly medianMs: number;
  readonly clickMs: number;
  readonly sampleMs: number;
  readonly slicesCovered: number;
  readonly liverSlices: number;
  readonly dice: number;
}

/** One positive click at the liver's centroid on its middle slice; warm tokens; median of 20 runs. */
function clickToMask(tokens: readonly Float32Array[], dim: number, study: Study, g: number): ClickFigures {
  const LIVER = 4;
  const liverSlices = study.truth.flatMap((t, s) => (t.includes(LIVER) ? [s] : []));
  const slice = liverSlices[Math.floor(liverSlices.length / 2)]!;
  const t = study.truth[slice]!;
  let sr = 0;
  let sc = 0;
  let n = 0;
  for (let i = 0; i < t.length; i++)
    if (t[i] === LIVER) {
      sr += Math.floor(i / study.cols);
      sc += i % study.cols;
      n++;
    }
  let row = sr / n;
  let col = sc / n;
  // A concave organ's centroid may fall outside it: click the nearest liver pixel instead.
  if (t[Math.round(row) * study.cols + Math.round(col)] !== LIVER) {
    let bestD = Infinity;
    for (let i = 0; i < t.length; i++) {
      if (t[i] !== LIVER) continue;
      const d = (Math.floor(i / study.cols) - row) ** 2 + ((i % study.cols) - col) ** 2;
      if (d < bestD) {
        bestD = d;
        row = Math.floor(i / study.cols);
        col = i % study.cols;
      }
    }
  }
  const sampler = new TokenSampler(study.rows, study.cols, g, 2);
  const run = () => {
    const t0 = performance.now();
    const result = segmentByClicks([{ slice, row, col, positive: true }], [], {
      slices: study.slices,
      rows: study.rows,
      cols: study.cols,
      grid: g,
      dim,
      tokens: (s) => tokens[s]!,
    });
    const t1 = performance.now();
    // As the Segment service scores a prompt head: background 0.5, the object 1 on its tokens.
    const masks = new Map<number, Uint8Array>();
    const scores = new Float32Array(2 * g * g);
    for (const [s, m] of result) {
      scores.fill(0.5, 0, g * g);
      for (let i = 0; i < g * g; i++) scores[g * g + i] = m[i]!;
      masks.set(s, sampler.sample(scores, 'probabilities').classes);
    }
    const t2 = performance.now();
    return { masks, total: t2 - t0, click: t1 - t0, sample: t2 - t1 };
  };
  run();
  const runs = Array.from({ length: CLICK_RUNS }, run);
  const masks = runs[0]!.masks;
  let p = 0;
  let r = 0;
  let both = 0;
  for (let s = 0; s < study.slices; s++) {
    const m = masks.get(s);
    const tr = study.truth[s]!;
    for (let i = 0; i < tr.length; i++) {
      const x = m ? m[i]! : 0;
      const y = tr[i] === LIVER ? 1 : 0;
      p += x;
      r += y;
      both += x & y;
    }
  }
  return {
    slice,
    row,
    col,
    medianMs: median(runs.map((x) => x.total)),
    clickMs: median(runs.map((x) => x.click)),
    sampleMs: median(runs.map((x) => x.sample)),
    slicesCovered: masks.size,
    liverSlices: liverSlices.length,
    dice: (2 * both) / (p + r),
  };
}

function printTable(title: string, rows: readonly { name: string; dice: Map<string, number> }[]): void {
  const names = [...rows[0]!.dice.keys()];
  const w = Math.max(...rows.map((r) => r.name.length), 8);
  out(title);
  out(`  ${'organ'.padEnd(18)}${rows.map((r) => r.name.padStart(w + 2)).join('')}`);
  for (const n of names)
    out(`  ${n.padEnd(18)}${rows.map((r) => fmt(r.dice.get(n)!).padStart(w + 2)).join('')}`);
}

/** Everything one backbone gives: Dice of the probes, timings, click figures. */
interface BackboneReport {
  readonly backbone: string;
  readonly demoWeights: boolean;
  readonly hidden: number;
  readonly probes: readonly {
    name: string;
    kind: SegmenterKind;
    features: number;
    l2: number;
    cv: readonly { l2: number; meanCvDice: number }[];
    fitSeconds: number;
  }[];
  readonly dice: Record<string, Record<string, Record<string, number>>>;
  readonly timing: Record<string, number>;
  readonly click: ClickFigures;
}

async function runBackbone(
  label: string,
  bundleDir: string,
  study: Study,
  split: ReturnType<typeof chooseTraining>,
  baselines: Setup['baselines'],
  rounds: number,
  cache: Setup['cache'],
): Promise<BackboneReport> {
  const engine = await EmbedEngine.open(bundleDir, { maxBatch: EMBED_BATCH });
  const info = engine.info();
  const m = engine.bundle.manifest.architecture;
  const model: ModelGrid = { imageSize: m.image_size, patchSize: m.patch_size };
  out();
  out(
    `== ${label}: ${info.name}@${info.version} (hidden ${info.hidden}, ${m.num_layers} layers, ` +
      `demo_weights=${info.demoWeights}, ${info.executionProvider}, ${info.intraOpThreads} intra-op threads)`,
  );
  const batches = embedBatches(engine, study);
  try {
    const t0 = performance.now();
    const { tokens, dim } = await embedTokens(engine, batches);
    out(
      `embedded ${study.slices} slices at batch ${EMBED_BATCH} (first run, untimed for the ratios): ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    return await evaluateBackbone(
      { label, info, engine, batches, tokens, dim, model },
      { study, split, baselines, rounds, cache },
    );
  } finally {
    await engine.close();
  }
}

/** One opened backbone and the tokens it gave. */
interface Backbone {
  readonly label: string;
  readonly info: EngineInfo;
  readonly engine: EmbedEngine;
  readonly batches: readonly { n: number; px: Float32Array }[];
  readonly tokens: readonly Float32Array[];
  readonly dim: number;
  readonly model: ModelGrid;
}

/** What every backbone is evaluated against. */
interface Setup {
  readonly study: Study;
  readonly split: ReturnType<typeof chooseTraining>;
  readonly baselines: readonly { name: string; pred: Uint8Array[] }[];
  /** Timed rounds. */
  readonly rounds: number;
  /** The pixel-patch probe, fitted by the first backbone's run (it does not depend on the backbone). */
  readonly cache: { pixel?: ProbeResult; position?: ProbeResult };
}

async function evaluateBackbone(bb: Backbone, setup: Setup): Promise<BackboneReport> {
  const { label, info, engine, batches, tokens, dim, model } = bb;
  const { study, split, baselines, rounds, cache } = setup;
  const g = tokenGridSize(model);
  const probes: ProbeResult[] = [];
  probes.push(await probe('token-linear', 'linear', tokens, dim, study, split.train, model));
  probes.push(await probe('token-3x3', 'conv3x3', tokens, dim, study, split.train, model));
  const report: BackboneReport['probes'][number][] = [];
  // The pixel-patch probe does not depend on the backbone: fitted once, reused.
  if (!cache.pixel) {
    const p = model.patchSize;
    const px = study.pixels.map((x) => pixelPatchTokens(x, model.imageSize, p));
    cache.pixel = await probe('pixel-linear', 'linear', px, p * p, study, split.train, model);
  }
  probes.push(cache.pixel);
  // Control: where a token is, and nothing of the image (the ViT's tokens carry position embeddings).
  cache.position ??= await probe(
    'position-only',
    'linear',
    study.pixels.map(() => positionTokens(g)),
    2 * g,
    study,
    split.train,
    model,
  );
  probes.push(cache.position);
  out(
    `fits (L2 ${QUICK ? `fixed at the default ${SEGMENT_FIT_DEFAULTS.l2} (--quick)` : 'chosen by leave-one-slice-out CV Dice on the 5 labelled slices'}; CV Dice = mean over classes):`,
  );
  for (const p of probes) {
    out(
      `  ${p.name.padEnd(13)} ${String(p.dim).padStart(4)} features  CV ${p.cv.map((c) => `l2=${c.l2.toExponential(0)}:${fmt(c.meanCvDice)}`).join('  ')}  → l2=${p.l2.toExponential(0)}${p.atEdge ? ' (edge of the searched range)' : ''}  (${p.fitSeconds.toFixed(1)} s)`,
    );
    report.push({
      name: p.name,
      kind: p.kind,
      features: p.dim,
      l2: p.l2,
      cv: p.cv,
      fitSeconds: p.fitSeconds,
    });
  }
  const methods = [...probes.map((p) => ({ name: p.name, pred: p.pred })), ...baselines];
  const dice: BackboneReport['dice'] = {};
  const organTest = split.test.filter((s) => split.organSlices.includes(s));
  const sets: [string, string, number[]][] = [
    ['organs', `held-out slices with any of the organs (${organTest.length})`, organTest],
    ['all', `all held-out slices (${split.test.length})`, split.test],
    ['train', 'the 5 labelled slices themselves (what the fit saw, not a test)', split.train],
  ];
  for (const [key, title, slices] of sets) {
    const rows = methods.map((x) => ({ name: x.name, dice: diceOf(x.pred, study, slices) }));
    dice[key] = Object.fromEntries(rows.map((r) => [r.name, Object.fromEntries(r.dice)]));
    if (key === 'all' && slices.length === organTest.length) {
      out(
        `Dice, ${label}, all held-out slices: the same ${slices.length} slices (every slice shows an organ)`,
      );
      continue;
    }
    printTable(`Dice, ${label}, ${title} (3D Dice over those slices' canonical pixels):`, rows);
  }
  // Goals, on the held-out organ slices.
  const d = dice.organs!;
  const mean = (n: string) => d[n]!['mean (4 organs)']!;
  const ratioText = (a: number, b: number): string => (b > 0 ? `×${fmt(a / b, 2)}` : a > 0 ? '×∞' : '×–');
  const others = ['pixel-linear', ...baselines.map((b) => b.name), 'position-only'];
  out('ratios of mean Dice (4 organs, kidneys merged; held-out organ slices):');
  for (const tok of ['token-linear', 'token-3x3'])
    out(`  ${tok.padEnd(13)} ${others.map((o) => `/ ${o} ${ratioText(mean(tok), mean(o))}`).join('   ')}`);
  for (const tok of ['token-linear', 'token-3x3']) {
    out(`per organ, ${tok} vs the others (LOSES where it does):`);
    for (const r of REPORT) {
      const t = d[tok]![r.name]!;
      const cmp = others
        .map((o) => {
          const v = d[o]![r.name]!;
          return `${o} ${fmt(v)} ${ratioText(t, v)}${t < v ? ' LOSES' : ''}`;
        })
        .join('   ');
      out(`  ${r.name.padEnd(17)} ${fmt(t)}  vs  ${cmp}`);
    }
  }
  const ratio = mean('token-linear') / mean('pixel-linear');
  const beatsThr = baselines.every((b) => mean('token-linear') > mean(b.name));
  const who = label === 'demo' ? 'demo-weights' : `${label} (random weights, for the record)`;
  out(
    `${ratio >= RATIO_GOAL ? 'PASS' : 'FAIL'}: ${who} token probe (linear) / pixel-patch probe = ${fmt(ratio, 2)} (goal ≥ ${RATIO_GOAL}): ` +
      `${fmt(mean('token-linear'))} vs ${fmt(mean('pixel-linear'))} mean Dice`,
  );
  out(
    `${beatsThr ? 'PASS' : 'FAIL'}: ${who} token probe (linear) beats the threshold baseline (both variants): ` +
      `${fmt(mean('token-linear'))} vs ${baselines.map((b) => `${b.name} ${fmt(mean(b.name))}`).join(', ')}`,
  );
  const pos = mean('position-only');
  out(
    `${pos >= mean('token-linear') ? 'NOTE' : 'note'}: control, a linear probe on the token's grid position alone (one-hot row + column, no image) ` +
      `scores ${fmt(pos)}: token-linear ${ratioText(mean('token-linear'), pos)}, token-3x3 ${ratioText(mean('token-3x3'), pos)}, ` +
      `pixel-linear ${ratioText(mean('pixel-linear'), pos)} of it` +
      (pos >= mean('token-linear')
        ? ` — on one patient, where an organ sits predicts it; the linear token probe's lead over pixels is position, not image content`
        : ''),
  );

  // Timing: the head vs embedding, same slices, same run, interleaved rounds.
  const tm = await timeInterleaved(
    engine,
    batches,
    probes.filter((x) => x.name.startsWith('token')).map((p) => ({ name: p.name, head: p.fit.head })),
    tokens,
    study,
    g,
    rounds,
  );
  const timing: Record<string, number> = { embedMsPerSlice: tm.embedMs };
  out(
    `time per slice (${study.slices} slices; medians of ${rounds} interleaved rounds after a warm-up; ratios = medians of per-round ratios):`,
  );
  out(`  ${`embedding, batch ${EMBED_BATCH}`.padEnd(34)} ${ms(tm.embedMs).padStart(9)}`);
  for (const h of tm.heads) {
    timing[`${h.name}.headMsPerSlice`] = h.headMs;
    timing[`${h.name}.sampleMsPerSlice`] = h.sampleMs;
    timing[`${h.name}.headOverEmbed`] = h.headRatio;
    timing[`${h.name}.headAndSamplingOverEmbed`] = h.headSampleRatio;
    out(
      `  ${`${h.name} head (ORT, batch ${HEAD_BATCH})`.padEnd(34)} ${ms(h.headMs).padStart(9)} = ${(100 * h.headRatio).toFixed(2)}% of embedding  ` +
        `${h.headRatio <= HEAD_GOAL ? 'PASS' : 'FAIL'} (goal ≤ ${100 * HEAD_GOAL}%)`,
    );
    out(
      `  ${`${h.name} sampling to pixels`.padEnd(34)} ${ms(h.sampleMs).padStart(9)}   head + sampling = ${(100 * h.headSampleRatio).toFixed(2)}% of embedding`,
    );
  }
  const click = clickToMask(tokens, dim, study, g);
  out(
    `click-to-mask, warm token cache: one positive click at the liver centroid, slice ${click.slice} ` +
      `(row ${click.row.toFixed(1)}, col ${click.col.toFixed(1)}), propagated:`,
  );
  out(
    `  ${ms(click.medianMs)} median of ${CLICK_RUNS} (segmentByClicks ${ms(click.clickMs)} + sampling ${ms(click.sampleMs)}); ` +
      `mask on ${click.slicesCovered} slices (liver on ${click.liverSlices}); Dice vs liver (whole volume) ${fmt(click.dice)}`,
  );
  return {
    backbone: `${info.name}@${info.version}`,
    demoWeights: info.demoWeights,
    hidden: info.hidden,
    probes: report,
    dice,
    timing,
    click,
  };
}

async function main(): Promise<void> {
  const shared = sharedDir();
  if (!shared) {
    process.stderr.write('segment-bench needs ../shared (TotalSegmentator example CT); it is not present\n');
    process.exit(2);
  }
  const t0 = performance.now();
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  out(
    `segment-bench: node ${process.version}, ${cpus().length} × ${cpu}, CPU budget ${cpuBudget()}, load average ${loadavg()[0]!.toFixed(2)}`,
  );
  out('NOTE: demo (and curia-b) bundles have RANDOM weights: Dice describes random features, not Curia.');
  const study = await loadStudy(join(shared, 'data', 'totalsegmentator'));
  const split = chooseTraining(study);
  out(
    `study: example_ct_sm, canonical ${study.slices} × ${study.rows} × ${study.cols}; organs ${ORGANS.map((o) => `${o.name} (${o.value})`).join(', ')}`,
  );
  out(
    `labelled slices (evenly spaced among the ${split.organSlices.length} organ slices, ⌊(i + ½)·n/5⌋): ${split.train.join(', ')}; held out: ${split.test.length}`,
  );
  const thr = thresholdBaseline(study, split.train);
  out(
    `threshold intervals (HU, 5th–95th percentile on the labelled slices; narrowest wins): ${TABLE.classes
      .map(
        (c, i) =>
          `${c.name} [${thr.intervals[i + 1]!.lo.toFixed(0)}, ${thr.intervals[i + 1]!.hi.toFixed(0)}]`,
      )
      .join(', ')}`,
  );
  const baselines = [
    { name: 'threshold', pred: thr.plain },
    { name: 'threshold+lcc', pred: thr.lcc },
  ];
  const reports: BackboneReport[] = [];
  const cache: Setup['cache'] = {};
  reports.push(await runBackbone('demo', await ensureDefaultBundle(), study, split, baselines, 5, cache));
  if (CURIA_B) {
    const t = performance.now();
    const dir = await ensureBenchBundle('curia-b');
    out(`\ncuria-b bench bundle ready in ${((performance.now() - t) / 1000).toFixed(1)} s (${dir})`);
    reports.push(await runBackbone('curia-b', dir, study, split, baselines, 2, cache));
  }
  out(
    `\ntotal ${((performance.now() - t0) / 1000).toFixed(1)} s; load average now ${loadavg()[0]!.toFixed(2)}`,
  );
  if (JSON_OUT) {
    await writeFile(
      JSON_OUT,
      `${JSON.stringify(
        {
          bench: 'segment',
          node: process.version,
          cpu,
          cpus: cpus().length,
          train: split.train,
          test: split.test,
          thresholds: TABLE.classes.map((c, i) => ({ name: c.name, ...thr.intervals[i + 1] })),
          reports,
        },
        null,
        2,
      )}\n`,
    );
    out(`figures written to ${JSON_OUT}`);
  }
}

await main();
