import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** The ghz release the calibration was done with (`go install github.com/bojand/ghz/cmd/ghz@…`). */
export const GHZ_VERSION = 'v0.121.0';

/** ghz's JSON report, the fields used here (latencies in ns). */
export interface GhzReport {
  readonly count: number;
  readonly total: number;
  readonly average: number;
  readonly fastest: number;
  readonly slowest: number;
  readonly rps: number;
  readonly latencyDistribution: readonly { readonly percentage: number; readonly latency: number }[] | null;
  readonly statusCodeDistribution: Readonly<Record<string, number>> | null;
}

/** Finds ghz: `$GHZ`, `$GOPATH/bin/ghz`, `~/go/bin/ghz`, or on PATH. */
export function findGhz(): string | null {
  const candidates = [
    process.env.GHZ,
    process.env.GOPATH ? join(process.env.GOPATH, 'bin', 'ghz') : undefined,
    join(homedir(), 'go', 'bin', 'ghz'),
  ];
  for (const c of candidates) if (c && existsSync(c)) return c;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'ghz'))) return join(dir, 'ghz');
  }
  return null;
}

/** Options of {@link runGhz}. */
export interface GhzOptions {
  readonly target: string;
  /** `package.Service/Method` (resolved through server reflection). */
  readonly call: string;
  readonly concurrency: number;
  /** Total requests. */
  readonly requests: number;
  /** Hard time bound, seconds (ghz is killed after it, plus 30 s). */
  readonly durationSec: number;
  readonly timeoutMs: number;
}

/**
 * Runs ghz against a loopback target (insecure, reflection, empty request), bounded in
 * requests and time, on one connection like the generator's single channel.
 */
export async function runGhz(ghz: string, o: GhzOptions): Promise<GhzReport> {
  const args = [
    '--insecure',
    '--call',
    o.call,
    '-d',
    '{}',
    '-c',
    String(o.concurrency),
    '--connections',
    '1',
    // Bounded by count (-z would override -n); the time bound is the process timeout below.
    '-n',
    String(o.requests),
    '-t',
    `${o.timeoutMs}ms`,
    '-O',
    'json',
    o.target,
  ];
  const { stdout } = await promisify(execFile)(ghz, args, {
    maxBuffer: 64 * 1024 * 1024,
    timeout: (o.durationSec + 30) * 1000,
  });
  return JSON.parse(stdout) as GhzReport;
}

/** Latency percentile of a ghz report, ms (NaN when absent). */
export function ghzPercentile(r: GhzReport, percentage: number): number {
  const row = r.latencyDistribution?.find((d) => d.percentage === percentage);
  return row ? row.latency / 1e6 : Number.NaN;
}
