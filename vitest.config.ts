import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the TypeScript sources of sibling workspaces, not their dist/.
    alias: [
      { find: /^@curia\/([a-z0-9-]+)$/, replacement: `${root}libs/$1/src/index.ts` },
      { find: /^@curia\/([a-z0-9-]+)\/([a-z0-9-]+)$/, replacement: `${root}libs/$1/src/$2.ts` },
    ],
  },
  test: {
    include: ['{libs,services,loadtest}/*/src/**/*.test.ts', 'loadtest/src/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
