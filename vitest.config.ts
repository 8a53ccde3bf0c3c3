import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Bundles the viewer (dist/viewer/) the page and browser tests in test/viewer/ serve.
    globalSetup: ['test/viewer/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // The default reporter plus one closing line "N passed, N failed" that CI reads.
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
