import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { repoRoot } from '@curia/cli';

import { resultsDir } from '../report.js';

/**
 * A capacity figure from experiment 1's committed report (`summary[key]`), or null when the
 * report is missing or lacks it (the caller then measures).
 */
export function capacityFromReport(key: string): number | null {
  const file = join(resultsDir('capacity', repoRoot()), 'report.json');
  if (!existsSync(file)) return null;
  const json = JSON.parse(readFileSync(file, 'utf8')) as { summary?: Record<string, unknown> };
  const v = json.summary?.[key];
  return typeof v === 'number' && v > 0 ? v : null;
}
