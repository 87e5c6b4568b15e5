import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Benchmarks run through `npm run bench`, never as part of the test suite.
    exclude: [...configDefaults.exclude, 'test/bench/**'],
    env: { NODE_ENV: 'test' },
    // Integration files open PGlite (a ~4 s WASM cold start), PostgreSQL schemas and Redis
    // connections in their hooks, so hooks get more room than single tests.
    // A fresh PGlite data directory (initdb) takes 12-19 s alone on two cores, and over 60 s
    // while CLI child processes of other files compete for the same cores.
    testTimeout: 30_000,
    hookTimeout: 180_000,
    teardownTimeout: 30_000,
    // Child processes rather than worker threads: PGlite's WASM heap and native sockets are
    // better isolated per process, and two workers match the two cores of the CI machines.
    pool: 'forks',
    maxWorkers: 2,
    fileParallelism: true,
  },
});
