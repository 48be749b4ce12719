import { readFile } from 'node:fs/promises';

import { CuriaError } from '@curia/errors';
import { fitHead, maskPooledFeatures, type HeadFeatures } from '@curia/heads';
import { mulberry32, type EmbedEngine } from '@curia/model';
import { openVolume, preprocessSlices, type Volume } from '@curia/volume';

/** Inputs of {@link runOrganFewShot}. */
export interface OrganFewShotOptions {
  readonly ctPath: string;
  /** Label volume on the same grid as the CT. */
  readonly segPath: string;
  /** JSON object: label value → organ name. */
  readonly labelsPath: string;
  readonly engine: EmbedEngine;
  /** How many organs (those with the most voxels), default 6. */
  readonly organs?: number;
  /** Least voxels of an organ on a native slice for that (slice, organ) to become a sample, default 30. */
  readonly minVoxels?: number;
  /** Examples per class, default [1, 2, 5, 10]. */
  readonly budgets?: readonly number[];
  /** Random draws of the training examples per budget (accuracy is averaged), default 5. */
  readonly repeats?: number;
  readonly signal?: AbortSignal;
}

/** One point of the learning curve. */
export interface BudgetResult {
  readonly perClass: number;
  /** Mean test accuracy over the draws. */
  readonly accuracy: number;
  readonly draws: number;
}

/** What {@link runOrganFewShot} measured. */
export interface OrganFewShotResult {
  readonly organs: readonly { readonly label: number; readonly name: string; readonly voxels: number }[];
  readonly trainSamples: number;
  readonly testSamples: number;
  /** Uniform chance, 1 / number of organs. */
  readonly chance: number;
  /** Accuracy of always predicting the most frequent test organ. */
  readonly majority: number;
  readonly curve: readonly BudgetResult[];
}

/** Nearest-neighbour resize of a rows×cols label mask to 512×512 (pixel centres, as torch 'nearest-exact'). */
export function nearestResizeMask(
  src: Uint8Array,
  rows: number,
  cols: number,
  outH: number,
  outW: number,
  out = new Float32Array(outH * outW),
): Float32Array {
  const colIdx = new Int32Array(outW);
  for (let x = 0; x < outW; x++) colIdx[x] = Math.min(cols - 1, Math.floor(((x + 0.5) * cols) / outW));
  for (let y = 0; y < outH; y++) {
    const sr = Math.min(rows - 1, Math.floor(((y + 0.5) * rows) / outH)) * cols;
    const o = y * outW;
    for (let x = 0; x < outW; x++) out[o + x] = src[sr + colIdx[x]!]!;
  }
  return out;
}

interface Sample {
  readonly slice: number;
  readonly cls: number;
  readonly feature: Float32Array;
}

async function topOrgans(seg: Volume, n: number, names: Record<string, string>) {
  const counts = new Map<number, number>();
  const buf = new Float64Array(seg.geometry.canonicalDims[1] * seg.geometry.canonicalDims[2]);
  for (let k = 0; k < seg.sliceCount; k++) {
    const s = await seg.readCanonicalSlice(k, buf);
    for (let i = 0; i < s.length; i++) {
      const v = s[i]!;
      if (v !== 0) counts.set(v, (counts.get(v) ?? 0) + 1);
    }
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([label, voxels]) => ({ label, voxels, name: names[String(label)] ?? `label_${label}` }));
}

/**
 * Few-shot organ classification from mask-pooled backbone features: embeds every CT slice,
 * builds one sample per (slice, organ) with at least `minVoxels` voxels (the organ's label mask on
 * that slice, in the same canonical orientation, nearest-resized to the model input), splits slices
 * into train (even canonical index) and test (odd), fits logistic heads with 1, 2, 5, 10 examples per
 * organ and reports test accuracy. With random demo weights the numbers say nothing about Curia.
 */
export async function runOrganFewShot(o: OrganFewShotOptions): Promise<OrganFewShotResult> {
  const ct = await openVolume({ kind: 'path', path: o.ctPath });
  const seg = await openVolume({ kind: 'path', path: o.segPath });
  const [, rows, cols] = ct.geometry.canonicalDims;
  const sd = seg.geometry.canonicalDims;
  if (sd[0] !== ct.sliceCount || sd[1] !== rows || sd[2] !== cols) {
    throw new CuriaError('INVALID_ARGUMENT', 'segmentation and CT are not on the same canonical grid');
  }
  const names = JSON.parse(await readFile(o.labelsPath, 'utf8')) as Record<string, string>;
  const organs = await topOrgans(seg, o.organs ?? 6, names);
  const classOf = new Map(organs.map((g, i) => [g.label, i]));
  const minVoxels = o.minVoxels ?? 30;
  const info = o.engine.info();
  const size = o.engine.bundle.manifest.architecture.image_size;
  const batchSize = Math.min(info.maxBatch, 4);
  const samples: Sample[] = [];
  const native = new Uint8Array(rows * cols);
  const labelBuf = new Float64Array(rows * cols);
  const mask = new Float32Array(size * size);
  let pending: { index: number; pixels: Float32Array }[] = [];

  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const n = pending.length;
    const px = new Float32Array(n * size * size);
    pending.forEach((p, i) => px.set(p.pixels, i * size * size));
    const tokens = await o.engine.run(px, n, {
      outputs: ['last_hidden_state'],
      ...(o.signal ? { signal: o.signal } : {}),
    });
    const per = tokens.tokens * tokens.hidden;
    for (let b = 0; b < n; b++) {
      const k = pending[b]!.index;
      const labels = await seg.readCanonicalSlice(k, labelBuf);
      const one = {
        ...tokens,
        batch: 1,
        lastHiddenState: tokens.lastHiddenState!.subarray(b * per, (b + 1) * per),
      };
      for (const [label, cls] of classOf) {
        let count = 0;
        for (let i = 0; i < labels.length; i++) count += native[i] = labels[i] === label ? 1 : 0;
        if (count < minVoxels) continue;
        nearestResizeMask(native, rows, cols, size, size, mask);
        const f = maskPooledFeatures(one, 'post', 'mask', mask, size, size);
        if (!(f.maskCounts![0]! > 0)) continue;
        samples.push({ slice: k, cls, feature: f.data });
      }
    }
    pending = [];
  };
  for await (const s of preprocessSlices(ct, o.signal ? { signal: o.signal } : {})) {
    pending.push({ index: s.canonicalIndex, pixels: s.pixels });
    if (pending.length === batchSize) await flush();
  }
  await flush();

  const train = samples.filter((s) => s.slice % 2 === 0);
  const test = samples.filter((s) => s.slice % 2 === 1);
  const k = organs.length;
  const d = info.hidden;
  const testCounts = new Array<number>(k).fill(0);
  for (const s of test) testCounts[s.cls]!++;
  const testFeatures: HeadFeatures = {
    slices: test.length,
    hidden: d,
    blocks: [
      {
        data: concat(test.map((s) => s.feature)),
        tokensPerSlice: 1,
        maskCounts: new Float64Array(test.length).fill(1),
      },
    ],
  };
  const byClass = Array.from({ length: k }, (_, c) => train.filter((s) => s.cls === c));
  const curve: BudgetResult[] = [];
  for (const budget of o.budgets ?? [1, 2, 5, 10]) {
    if (byClass.some((c) => c.length < budget) || test.length === 0) continue;
    let acc = 0;
    const draws = o.repeats ?? 5;
    for (let r = 0; r < draws; r++) {
      const rnd = mulberry32(1000 * budget + r);
      const picked: Sample[] = [];
      for (const c of byClass) {
        const pool = [...c];
        for (let i = pool.length - 1; i > 0; i--) {
          const j = Math.floor(rnd() * (i + 1));
          [pool[i], pool[j]] = [pool[j]!, pool[i]!];
        }
        // fitHead needs two rows per class: a 1-shot example is given twice (same fit, half the L2 weight).
        const chosen = pool.slice(0, budget);
        picked.push(...(budget === 1 ? [...chosen, ...chosen] : chosen));
      }
      const head = await fitHead(
        'logistic',
        { data: concat(picked.map((s) => s.feature)), rows: picked.length, cols: d },
        Int32Array.from(picked, (s) => s.cls),
        { folds: 0, numClasses: k, ...(o.signal ? { signal: o.signal } : {}) },
      );
      const out = await head.run(testFeatures);
      let correct = 0;
      for (let i = 0; i < test.length; i++) {
        let best = 0;
        for (let c = 1; c < k; c++) if (out.logits[i * k + c]! > out.logits[i * k + best]!) best = c;
        if (best === test[i]!.cls) correct++;
      }
      acc += correct / test.length;
    }
    curve.push({ perClass: budget, accuracy: acc / draws, draws });
  }
  return {
    organs,
    trainSamples: train.length,
    testSamples: test.length,
    chance: 1 / k,
    majority: test.length ? Math.max(...testCounts) / test.length : 0,
    curve,
  };
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
