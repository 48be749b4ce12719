import { CuriaError } from '@curia/errors';

import type { ClassTable } from './classes.js';
import { type ModelGrid, type StudyGrid, tokenGridSize } from './grid.js';
import { InputLabelMap } from './label-map.js';
import { TokenSampler, type ScoreKind, type SlicePrediction } from './sample.js';
import { smoothAcrossSlices } from './segmenter.js';

/** Class scores of a batch of slices: K × G × G per slice, slices after one another. */
export type ScoreFn = (tokens: Float32Array, slices: number) => Promise<Float32Array>;

/** Options of {@link VolumeSegmentation}. */
export interface VolumeSegmentationOptions {
  readonly grid: StudyGrid;
  readonly model: ModelGrid;
  readonly table: ClassTable;
  /** Class indices to keep (others become background); all when absent. */
  readonly keep?: ReadonlySet<number> | undefined;
  /** Smooth scores across neighbouring slices (one slice of look-ahead). */
  readonly smooth: boolean;
  readonly scoreKind: ScoreKind;
  /** Slices scored per call of `scores` (default 4). */
  readonly batch?: number;
}

/** One finished canonical slice. */
export interface FinishedSlice {
  readonly slice: number;
  readonly prediction: SlicePrediction;
}

/**
 * Segments a study slice by slice: canonical slices' tokens go in (ascending, each once), class
 * scores are computed in batches, optionally smoothed across slices, sampled back to canonical
 * pixels and written into a label map on the input grid. Memory: a batch of tokens and two slices
 * of scores, whatever the study's size (plus the label map: one byte per input voxel).
 */
export class VolumeSegmentation {
  readonly labels: InputLabelMap;
  private readonly sampler: TokenSampler;
  private readonly g: number;
  private readonly pendingTokens: { slice: number; tokens: Float32Array }[] = [];
  /** Scored slices awaiting their next neighbour (smoothing). */
  private readonly scored: { slice: number; scores: Float32Array }[] = [];
  /** The last finished slice's raw scores (the previous neighbour when smoothing). */
  private previous: { slice: number; scores: Float32Array } | undefined;
  private last = -1;

  constructor(
    private readonly score: ScoreFn,
    private readonly o: VolumeSegmentationOptions,
  ) {
    const [, rows, cols] = o.grid.canonicalDims;
    this.g = tokenGridSize(o.model);
    this.sampler = new TokenSampler(rows, cols, this.g, o.table.size);
    this.labels = new InputLabelMap(o.grid, o.table);
  }

  /** Adds canonical slice `s`'s tokens (G·G × D); returns the slices finished meanwhile. */
  async add(s: number, tokens: Float32Array): Promise<FinishedSlice[]> {
    this.checkOrder(s);
    this.pendingTokens.push({ slice: s, tokens });
    return this.pendingTokens.length >= (this.o.batch ?? 4) ? this.flushTokens(false) : [];
  }

  /**
   * Adds canonical slice `s`'s class scores directly (K × G × G, e.g. a prompt head's object
   * masks); returns the slices finished meanwhile. Do not mix with {@link add} in one study.
   */
  async addScores(s: number, scores: Float32Array): Promise<FinishedSlice[]> {
    this.checkOrder(s);
    if (scores.length !== this.o.table.size * this.g * this.g) {
      throw new CuriaError('INTERNAL', `slice ${s}: scores must be ${this.o.table.size}×${this.g}×${this.g}`);
    }
    this.scored.push({ slice: s, scores });
    return this.flushTokens(false);
  }

  private checkOrder(s: number): void {
    const slices = this.o.grid.canonicalDims[0];
    if (!(Number.isInteger(s) && s > this.last && s < slices)) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `slice ${s} is out of order or outside 0..${slices - 1} (after ${this.last})`,
      );
    }
    this.last = s;
  }

  /** Scores what is left and returns the remaining slices. */
  async finish(): Promise<FinishedSlice[]> {
    return this.flushTokens(true);
  }

  private async flushTokens(final: boolean): Promise<FinishedSlice[]> {
    const batch = this.pendingTokens.splice(0);
    if (batch.length > 0) {
      const per = batch[0]!.tokens.length;
      const all = new Float32Array(per * batch.length);
      batch.forEach((b, i) => {
        if (b.tokens.length !== per)
          throw new CuriaError(
            'INVALID_ARGUMENT',
            `slice ${b.slice}: token count differs from its neighbours'`,
          );
        all.set(b.tokens, i * per);
      });
      const scores = await this.score(all, batch.length);
      const n = this.o.table.size * this.g * this.g;
      if (scores.length !== n * batch.length)
        throw new CuriaError('INTERNAL', 'the head returned scores of the wrong size');
      batch.forEach((b, i) => this.scored.push({ slice: b.slice, scores: scores.slice(i * n, (i + 1) * n) }));
    }
    const done: FinishedSlice[] = [];
    // Without smoothing every scored slice is final; with it, the last one waits for its neighbour.
    const wait = this.o.smooth && !final ? 1 : 0;
    let k = 0;
    for (; k < this.scored.length - wait; k++) {
      const cur = this.scored[k]!;
      const next = this.scored[k + 1];
      const prev = this.previous?.slice === cur.slice - 1 ? this.previous.scores : undefined;
      const nxt = next?.slice === cur.slice + 1 ? next.scores : undefined;
      done.push(
        this.finishSlice(cur.slice, this.o.smooth ? smoothAcrossSlices(prev, cur.scores, nxt) : cur.scores),
      );
      this.previous = cur;
    }
    this.scored.splice(0, k);
    return done;
  }

  private finishSlice(slice: number, scores: Float32Array): FinishedSlice {
    const prediction = this.sampler.sample(scores, this.o.scoreKind);
    const keep = this.o.keep;
    if (keep)
      for (let i = 0; i < prediction.classes.length; i++)
        if (!keep.has(prediction.classes[i]!)) prediction.classes[i] = 0;
    this.labels.put(slice, prediction);
    return { slice, prediction };
  }
}
