import { defineConfig } from 'vitest/config';

// Tests import the built packages (`pnpm build` runs first): worker threads load
// the same compiled files in tests as in production.
export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**', 'test/long/**'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
