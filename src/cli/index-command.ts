// `medstream index STORAGE [--catalog URL] [--prefix P] [--report] [--json]`: one scan of the
// storage into the catalog, with progress on stderr (a live line on a terminal, a line every few
// seconds otherwise) and a summary of indexed / unchanged / other / removed / failed objects.
// `--report` lists the objects that could not be indexed and the duplicates. `--prepare
// htj2k,thumbnails` then precomputes derived frames (dicomweb/derived-prepare.ts). Exit 0 when the
// scan completed (failed objects are reported, not fatal), 1 when it could not run.

import { Catalog } from '../catalog/catalog.js';
import { Indexer, type IndexProgress } from '../catalog/indexer.js';
import { createStorage } from '../storage/index.js';
import { catalogLocation } from './catalog-location.js';
import type { Config } from './config.js';
import { retryPolicyOf } from './serve.js';
import { runPrepare } from './prepare.js';
import type { DerivedKind } from '../dicomweb/derived.js';

export const INDEX_FLAGS = {
  prefix: { type: 'string' },
  report: { type: 'boolean' },
  json: { type: 'boolean' },
  prepare: { type: 'string' },
} as const;

export interface IndexCommandOptions {
  prefix?: string;
  report: boolean;
  json: boolean;
  /** Derived representations to precompute after the scan (`parsePrepare`). */
  prepare?: readonly DerivedKind[];
  out?: (text: string) => void;
  err?: (text: string) => void;
}

export async function runIndex(config: Config, options: IndexCommandOptions): Promise<number> {
  const out = options.out ?? ((text: string) => process.stdout.write(text));
  const err = options.err ?? ((text: string) => process.stderr.write(text));
  const storage = await createStorage(config.storage, {
    s3Endpoint: config.s3Endpoint,
    s3Region: config.s3Region,
    s3ForcePathStyle: config.s3ForcePathStyle,
    retry: retryPolicyOf(config),
  });
  let catalog: Catalog | undefined;
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  try {
    catalog = await Catalog.open(catalogLocation(config, storage.description));
    const tty = process.stderr.isTTY === true;
    let lastLine = 0;
    const line = (p: IndexProgress) =>
      `listed ${p.listed}: ${p.indexed} indexed, ${p.unchanged} unchanged, ${p.other} other, ${p.failed} failed`;
    const summary = await new Indexer(storage, catalog, { niftiModality: config.niftiModality }).scan({
      prefix: options.prefix,
      concurrency: config.indexConcurrency,
      signal: abort.signal,
      onProgress: (p) => {
        if (options.json) return;
        if (tty) err(`\r${line(p)}\x1b[K`);
        else if (Date.now() - lastLine > 5000) {
          lastLine = Date.now();
          err(line(p) + '\n');
        }
      },
    });
    if (tty && !options.json) err('\n');
    const counts = await catalog.counts();
    const problems = options.report ? await catalog.problems(100_000) : undefined;
    if (options.json) {
      out(
        JSON.stringify({ catalog: catalog.description, summary, counts, ...(problems ? { problems } : {}) }) +
          '\n',
      );
    } else {
      out(
        `${summary.complete ? 'indexed' : 'interrupted'} ${storage.description} into ${catalog.description} in ${(summary.ms / 1000).toFixed(1)} s\n` +
          `  ${summary.indexed} indexed, ${summary.unchanged} unchanged, ${summary.other} not DICOM, ` +
          `${summary.removed} removed, ${summary.failed} failed\n` +
          `  catalog: ${counts.studies} studies, ${counts.series} series, ${counts.instances} instances, ${counts.errors} errors\n`,
      );
      for (const p of problems ?? []) out(`  ${p.kind}: ${p.key}: ${p.reason}\n`);
      if (!options.report && counts.errors > 0) out(`  (medstream index --report lists the errors)\n`);
    }
    if (!summary.complete) return 1;
    if (options.prepare && options.prepare.length > 0) {
      const prepared = await runPrepare(config, {
        storage,
        catalog,
        kinds: options.prepare,
        prefix: options.prefix,
        json: options.json,
        signal: abort.signal,
        out,
        err,
      });
      return prepared;
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    await catalog?.close();
    await storage.close();
  }
}
