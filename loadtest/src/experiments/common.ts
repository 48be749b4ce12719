import { parseArgs } from 'node:util';

import { repoRoot } from '@curia/cli';

import { resultsDir } from '../report.js';

/** Flags every experiment script understands. */
export interface ExperimentArgs {
  /** Shorter runs (a quick look, not the committed report). */
  readonly quick: boolean;
  /** Where the report goes (default `loadtest/results/<experiment>`). */
  readonly out: string;
}

/** Parses `--quick` and `--out DIR`. */
export function experimentArgs(experiment: string): ExperimentArgs {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean', default: false }, out: { type: 'string' } },
    strict: true,
  });
  return { quick: values.quick, out: values.out ?? resultsDir(experiment, repoRoot()) };
}

/** ISO time without milliseconds. */
export function nowIso(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

/** Prints a progress line to stderr (reports go to files). */
export function progress(message: string): void {
  process.stderr.write(`[loadtest ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** The note every report carries about this machine. */
export const SHARED_MACHINE_NOTE =
  "This machine (2 cores) was shared with other engineers' builds and tests during the run: absolute numbers are noisy; ratios and properties are what the report asserts.";
