import { spawn } from 'node:child_process';
import { join } from 'node:path';

import { repoRoot } from '../cluster/launcher.js';

/** How a `curia` run ended. */
export interface CuriaRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The `curia` command as a user runs it: the committed bin, its own process. */
export function runCuria(args: readonly string[]): Promise<CuriaRun> {
  const child = spawn(process.execPath, [join(repoRoot(), 'libs/cli/bin/curia.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}
