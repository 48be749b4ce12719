import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

  it('`npx --no-install curia --help` runs the built CLI, from the repository root, offline', () => {
    const r = run('npx', ['--no-install', 'curia', '--help'], cleanEnv({ npm_config_offline: 'true' }));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: curia /);
    expect(r.stdout).toMatch(/\banalyze \[options\] <input>/);
  });

  it('the committed bin says to build when dist/ is missing (exit 2)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'curia-bin-'));
    try {
      mkdirSync(join(dir, 'bin'));
      copyFileSync(join(root, 'libs/cli/bin/curia.js'), join(dir, 'bin/curia.js'));
      const r = run(process.execPath, [join(dir, 'bin/curia.js'), '--help']);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        'curia: the CLI is not built yet; run `npm run build` in the repository root first\n',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
