import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Worker-heavy suites share 2 cores; running files one at a time keeps timings sane.
    fileParallelism: false,
  },
});
