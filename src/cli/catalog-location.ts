// Where the radiology catalog of a storage lives: --catalog when given, else one SQLite file per
// storage under --data-dir (named by a hash of the storage's location), so serving another
// bucket with the same data directory does not re-index over the first one's catalog.

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Config } from './config.js';

export function catalogLocation(
  config: Pick<Config, 'catalog' | 'dataDir'>,
  storageDescription: string,
): string {
  if (config.catalog !== undefined) return config.catalog;
  const hash = createHash('sha256').update(storageDescription).digest('hex').slice(0, 12);
  return join(config.dataDir, `catalog-${hash}.sqlite`);
}
