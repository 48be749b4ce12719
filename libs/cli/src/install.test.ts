import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { repoRoot } from './cluster/launcher.js';

const root = repoRoot();

/** This process's environment without the npm_* variables an enclosing `npm test` sets. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_'))),
    ...extra,
  };
}

function run(cmd: string, args: string[], env = cleanEnv()) {
  return spawnSync(cmd, args, { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
}

describe('a fresh clone after `npm ci`', () => {
  it('npm reads the project config without a warning and runs no dependency install script', () => {
    const r = run('npm', ['config', 'get', 'ignore-scripts']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('true');
    // e.g. "npm warn Unknown project config …" or "… not yet covered by allowScripts"
    expect(r.stderr).toBe('');
  });

  it('the allowScripts policy denies every locked package with an install script, onnxruntime-node first', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      allowScripts?: Record<string, boolean>;
    };
    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { hasInstallScript?: boolean }>;
    };
    const withScripts = new Set(
      Object.entries(lock.packages)
        .filter(([, p]) => p.hasInstallScript)
        .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)),
    );
    expect(withScripts).toContain('onnxruntime-node');
    const policy = pkg.allowScripts ?? {};
    expect([...withScripts].filter((name) => policy[name] !== false)).toEqual([]);
  });
});
