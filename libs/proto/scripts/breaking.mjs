#!/usr/bin/env node
// `npm run proto:breaking`: buf breaking (FILE rules) of proto/ against the previous commit. Skips, with the reason
// printed, when the comparison is impossible: a shallow clone, no previous commit, or no proto/ in HEAD~1.
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bufBin = join(repoRoot, 'node_modules', '.bin', process.platform === 'win32' ? 'buf.cmd' : 'buf');

function git(args) {
  return spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8' });
}

function skip(reason) {
  console.log(`proto:breaking: skipped: ${reason}`);
  process.exit(0);
}

if (git(['rev-parse', '--is-shallow-repository']).stdout.trim() === 'true') {
  skip('the repository is a shallow clone (fetch full history to compare against HEAD~1)');
}
if (git(['rev-parse', '--verify', '--quiet', 'HEAD~1']).status !== 0) skip('HEAD has no parent commit');
const tree = git(['ls-tree', '--name-only', 'HEAD~1', 'proto/buf.yaml']);
if (tree.status !== 0 || tree.stdout.trim() === '') skip('HEAD~1 has no proto/buf.yaml to compare against');

execFileSync(bufBin, ['breaking', 'proto', '--against', '.git#ref=HEAD~1,subdir=proto'], {
  cwd: repoRoot,
  stdio: 'inherit',
});
console.log('proto:breaking: no breaking changes against HEAD~1');
