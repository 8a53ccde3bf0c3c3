// The two catalog databases the catalog suites run on (describe.each): SQLite in a temp file
// and a real PostgreSQL 15 started for the suite. `fresh()` gives the location of a new, empty
// catalog each time (a new SQLite file, a new PostgreSQL database).

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startPostgres, type TestPostgres } from './postgres-server.js';

export type Dialect = 'sqlite' | 'postgres';
export const DIALECTS: Dialect[] = ['sqlite', 'postgres'];

export interface CatalogBackend {
  /** Location of a new, empty catalog. */
  fresh(): Promise<string>;
  stop(): Promise<void>;
}

export async function startBackend(dialect: Dialect): Promise<CatalogBackend> {
  let n = 0;
  if (dialect === 'sqlite') {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-catalog-'));
    return {
      fresh: async () => path.join(dir, `catalog-${++n}.sqlite`),
      stop: () => rm(dir, { recursive: true, force: true }),
    };
  }
  const server: TestPostgres = await startPostgres();
  return {
    fresh: () => server.createDatabase(`catalog_${++n}`),
    stop: () => server.stop(),
  };
}
