import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Fails any test during which a reap hook threw (the reaper only warns, see src/arena/hooks.ts).
    setupFiles: ['test/support/setup.ts'],
    // Generous: on a loaded machine (CI, two busy loops on two cores) worker suites run many times slower.
    testTimeout: 180_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Worker-heavy suites share 2 cores; running files one at a time keeps timings sane.
    fileParallelism: false,
  },
});
