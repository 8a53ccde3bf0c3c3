// Absolute paths of the shared, read-only test fixtures (real slides and volumes, listed in
// ../shared/fixtures/README.md). Tests build paths from here so they run from any working
// directory.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** `<repo>/../shared/fixtures`: test/support/fixtures.ts → repo root is ../.., shared is ../../../shared. */
export const FIXTURES = path.resolve(fileURLToPath(new URL('../../../shared/fixtures', import.meta.url)));

/** Path of one fixture, e.g. `fixture('wsi/svs/CMU-1-Small-Region.svs')`. */
export function fixture(relative: string): string {
  return path.join(FIXTURES, relative);
}
