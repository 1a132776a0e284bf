import { defineConfig } from 'vitest/config';

// chdb allows one ClickHouse engine per process: every test file runs in its own forked process.
export default defineConfig({
  test: {
    pool: 'forks',
    isolate: true,
    fileParallelism: true,
    maxWorkers: 2,
    include: ['test/**/*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 300_000,
  },
});
