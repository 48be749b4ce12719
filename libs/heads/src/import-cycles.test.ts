import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

function tsFiles(dir: string): string[] {
  const entries = readdirSync(dir, { withFileTypes: true }).sort((x, y) => (x.name < y.name ? -1 : 1));
  return entries.flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return tsFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/**
 * Cycles among the relative imports of the TypeScript files under `dirs` (type-only imports and
 * re-exports included), one per back edge found, each as the files of the cycle.
 */
function importCycles(dirs: readonly string[]): string[][] {
  const graph = new Map<string, string[]>();
  for (const file of dirs.flatMap(tsFiles)) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    graph.set(
      file,
      importedFiles
        .map((i) => i.fileName)
        .filter((spec) => spec.startsWith('.'))
        .map((spec) => resolve(dirname(file), spec.replace(/\.js$/, '.ts')))
        .map((p) => (existsSync(p) ? p : join(p, 'index.ts'))),
    );
  }
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') cycles.push(path.slice(path.indexOf(next)));
      else if (!state.has(next) && graph.has(next)) visit(next);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return cycles;
}

describe('relative imports', () => {
  it('form no cycle in any workspace (libs/*, services/*, loadtest)', () => {
    const dirs = ['libs', 'services']
      .flatMap((group) => readdirSync(join(ROOT, group)).map((w) => join(ROOT, group, w, 'src')))
      .concat(join(ROOT, 'loadtest', 'src'))
      .filter((d) => existsSync(d));
    expect(dirs.length).toBeGreaterThan(10);
    const cycles = importCycles(dirs).map((c) => c.map((f) => relative(ROOT, f)).join(' → '));
    expect(cycles).toEqual([]);
  });

  it('the walker finds a cycle closed by a type-only import through a re-export', () => {
    const dir = mkdtempSync(join(tmpdir(), 'curia-import-cycles-'));
    const files: Record<string, string> = {
      'a.ts': "import { b } from './b.js';\nexport const a = b;\n",
      'b.ts': "export { c as b } from './sub/c.js';\n",
      'sub/c.ts': "import type { A } from '../types.js';\nexport const c: A = 1;\n",
      // Erased at runtime, but still a cycle between the modules.
      'types.ts': "import type { a } from './a.js';\nexport type A = typeof a;\n",
      'leaf.ts': "import { a } from './a.js';\nexport const leaf = a;\n",
    };
    try {
      for (const [name, text] of Object.entries(files)) {
        mkdirSync(dirname(join(dir, name)), { recursive: true });
        writeFileSync(join(dir, name), text);
      }
      expect(importCycles([dir]).map((c) => c.map((f) => relative(dir, f)))).toEqual([
        ['a.ts', 'b.ts', join('sub', 'c.ts'), 'types.ts'],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
