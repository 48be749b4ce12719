import { build, type Histogram } from 'hdr-histogram-js';

/** Latency percentiles of a set of calls, milliseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/** Longest latency tracked exactly: one hour, in microseconds (longer values saturate). */
const HIGHEST_US = 3_600_000_000;

/**
 * An HDR latency histogram (microsecond resolution, 3 significant digits): constant memory
 * whatever the call count, so a long or fast run never grows the generator's heap.
 */
export class LatencyHistogram {
  private readonly h: Histogram = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: 3,
    autoResize: false,
  });

  /** Records one latency in milliseconds. */
  record(ms: number): void {
    const us = Math.min(HIGHEST_US, Math.max(1, Math.round(ms * 1000)));
    this.h.recordValue(us);
  }

  /** Adds every value of `other` to this histogram. */
  add(other: LatencyHistogram): void {
    this.h.add(other.h);
  }

  /** Number of recorded values. */
  get count(): number {
    return this.h.totalCount;
  }

  /** Value at a percentile (0–100), ms; NaN when empty. */
  percentile(p: number): number {
    return this.count === 0 ? Number.NaN : this.h.getValueAtPercentile(p) / 1000;
  }

  /** Count, mean and p50/p90/p99/max in ms (NaN fields when empty). */
  summary(): LatencySummary {
    if (this.count === 0) {
      return {
        count: 0,
        mean: Number.NaN,
        p50: Number.NaN,
        p90: Number.NaN,
        p99: Number.NaN,
        max: Number.NaN,
      };
    }
    return {
      count: this.count,
      mean: this.h.mean / 1000,
      p50: this.percentile(50),
      p90: this.percentile(90),
      p99: this.percentile(99),
      max: this.h.maxValue / 1000,
    };
  }
}
