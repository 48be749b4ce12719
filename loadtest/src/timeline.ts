import { LatencyHistogram } from './histogram.js';

/** One time bin of a run. */
export interface TimelineBin {
  /** Bin start, seconds since the run started. */
  readonly t: number;
  /** Calls that finished OK in this bin, per second. */
  readonly okPerSec: number;
  /** Calls that finished with any other status in this bin, per second. */
  readonly errorsPerSec: number;
  /** Work units (e.g. slices) completed OK in this bin, per second. */
  readonly unitsPerSec: number;
  /** p50 / p99 latency of the OK calls that finished in this bin, ms (NaN when none). */
  readonly p50: number;
  readonly p99: number;
}

interface MutableBin {
  ok: number;
  errors: number;
  units: number;
  readonly latency: LatencyHistogram;
}

/** Throughput and latency over time, in fixed bins by completion time. */
export class Timeline {
  private readonly bins: MutableBin[] = [];

  constructor(private readonly binMs = 1_000) {}

  /** Records one finished call, `atMs` after the run started. */
  record(atMs: number, ok: boolean, latencyMs: number, units: number): void {
    const i = Math.max(0, Math.floor(atMs / this.binMs));
    while (this.bins.length <= i)
      this.bins.push({ ok: 0, errors: 0, units: 0, latency: new LatencyHistogram() });
    const bin = this.bins[i]!;
    if (ok) {
      bin.ok++;
      bin.units += units;
      bin.latency.record(latencyMs);
    } else {
      bin.errors++;
    }
  }

  /** The bins, oldest first. */
  series(): TimelineBin[] {
    const perSec = 1000 / this.binMs;
    return this.bins.map((b, i) => ({
      t: (i * this.binMs) / 1000,
      okPerSec: b.ok * perSec,
      errorsPerSec: b.errors * perSec,
      unitsPerSec: b.units * perSec,
      p50: b.latency.percentile(50),
      p99: b.latency.percentile(99),
    }));
  }
}
