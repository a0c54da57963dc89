import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', '.tools/**'],
    // Integration tests start real servers (Redis, Docker with gVisor, pebble): give them room on 2-core machines.
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
  },
});
