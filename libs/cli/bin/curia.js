#!/usr/bin/env node
// The `curia` bin. It is committed, not built, so that `npm ci` links it into node_modules/.bin
// before `npm run build` has produced dist/: npm links no bin whose file is missing, and
// `npx curia` would then fall through to the npm registry.
import { existsSync } from 'node:fs';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('curia: the CLI is not built yet; run `npm run build` in the repository root first\n');
  process.exit(2);
}
await import(main.href);
