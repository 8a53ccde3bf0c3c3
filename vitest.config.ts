import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Bundles the viewer (dist/viewer/) the page and browser tests in test/viewer/ serve.
    globalSetup: ['test/viewer/global-setup.ts'],
    testTimeout: 30_000,
    // Servers the tests start as child processes keep their state outside the working tree and
    // do not index their storage at start (it would add to the storage reads tests count).
    env: { MEDSTREAM_DATA_DIR: join(tmpdir(), 'medstream-test-data'), MEDSTREAM_INDEX_AT_START: 'false' },
    hookTimeout: 60_000,
    // The default reporter plus one closing line "N passed, N failed" that CI reads.
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
