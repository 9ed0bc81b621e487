import { defineConfig } from 'vitest/config';

// Tests import the built packages (`pnpm build` runs first): worker threads load
// the same compiled files in tests as in production.
export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**', 'test/long/**'],
    pool: 'forks',
    // Cross-package tests run real processes and sockets; one file at a time keeps them honest on 2 cores.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
