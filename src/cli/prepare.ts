// The `--prepare` step of `medstream index`: builds the same derived-frame caches the server uses
// (<data-dir>/derived-cache, --derived-store) and precomputes the asked representations with
// bounded concurrency (--decode-workers, default one per core), printing progress on stderr and a
// summary on stdout. Exit 0 when every frame is ready, 1 when some failed or the run was stopped.

import os from 'node:os';
import { join } from 'node:path';
import type { Catalog } from '../catalog/catalog.js';
import { DerivedCache } from '../dicomweb/derived-cache.js';
import { prepareDerived, type PrepareProgress } from '../dicomweb/derived-prepare.js';
import { DerivedFrames, type DerivedKind } from '../dicomweb/derived.js';
import type { Storage } from '../storage/types.js';
import type { Config } from './config.js';

export interface RunPrepareOptions {
  storage: Storage;
  catalog: Catalog;
  kinds: readonly DerivedKind[];
  prefix?: string;
  json: boolean;
  signal: AbortSignal;
  out: (text: string) => void;
  err: (text: string) => void;
}

export async function runPrepare(config: Config, options: RunPrepareOptions): Promise<number> {
  const workers = config.decodeWorkers || os.availableParallelism();
  const derived = new DerivedFrames({
    workers,
    cache: new DerivedCache({
      dir: join(config.dataDir, 'derived-cache'),
      maxBytes: config.derivedCacheBytes,
      store:
        config.derivedStore === undefined
          ? undefined
          : { storage: options.storage, prefix: config.derivedStore },
      tmpDir: join(config.dataDir, 'tmp'),
      onStoreError: (e) => options.err(`derived store write failed: ${(e as Error).message}\n`),
    }),
  });
  const tty = process.stderr.isTTY === true;
  let lastLine = 0;
  const line = (p: PrepareProgress) =>
    `prepared ${p.done}/${p.total}: ${p.made} encoded, ${p.cached} already there, ${p.failed} failed`;
  const started = Date.now();
  try {
    const result = await prepareDerived({
      catalog: options.catalog,
      storage: options.storage,
      derived,
      kinds: options.kinds,
      prefix: options.prefix,
      concurrency: workers,
      signal: options.signal,
      onProgress: (p) => {
        if (options.json) return;
        if (tty) options.err(`\r${line(p)}\x1b[K`);
        else if (Date.now() - lastLine > 5000 || p.done === p.total) {
          lastLine = Date.now();
          options.err(line(p) + '\n');
        }
      },
      onFailure: (instance, frame, kind, e) =>
        options.err(`${instance.key} frame ${frame} ${kind}: ${(e as Error).message}\n`),
    });
    if (tty && !options.json) options.err('\n');
    const complete = result.done === result.total;
    if (options.json) {
      options.out(JSON.stringify({ prepare: { kinds: options.kinds, ...result, complete } }) + '\n');
    } else {
      options.out(
        `${complete ? 'prepared' : 'interrupted'} ${options.kinds.join(', ')} in ${((Date.now() - started) / 1000).toFixed(1)} s\n` +
          `  ${result.done} of ${result.total} frames: ${result.made} encoded, ${result.cached} already there, ${result.failed} failed` +
          (result.skipped > 0 ? `; ${result.skipped} instances not derivable\n` : '\n'),
      );
    }
    return complete && result.failed === 0 ? 0 : 1;
  } finally {
    await derived.close();
  }
}
