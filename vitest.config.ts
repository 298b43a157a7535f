import { defineConfig } from 'vitest/config';

// Three suites: `unit` and `integration` make up `npm test` and need nothing but this repo;
// `shared` reads the real datasets and checkpoints in ../shared and runs in CI as `npm run test:shared`.
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 60_000 } },
      { test: { name: 'integration', include: ['test/integration/**/*.test.ts'], testTimeout: 600_000, hookTimeout: 120_000, fileParallelism: false } },
      { test: { name: 'shared', include: ['test/shared/**/*.test.ts'], testTimeout: 600_000 } },
    ],
  },
});
