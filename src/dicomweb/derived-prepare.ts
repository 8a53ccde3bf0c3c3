// Precomputes derived frames (`medstream index --prepare htj2k,thumbnails`): every frame of every
// served instance under a key prefix, in the chosen representations, with bounded concurrency,
// into the same caches the server reads (disk cache, --derived-store). Resumable: a frame already
// in a cache costs no storage read and no encode, so an interrupted run picks up where it stopped.

import type { Catalog, StoredInstance } from '../catalog/catalog.js';
import type { FrameTable } from '../dicom/frames.js';
import { ConfigError } from '../errors.js';
import type { Storage } from '../storage/types.js';
import { canDerive, type DerivedFrames, type DerivedKind } from './derived.js';
import { storedFrameTable } from './frames.js';

/** The names `--prepare` takes, and the representations each stands for. */
export const PREPARE_SETS: Record<string, readonly DerivedKind[]> = {
  htj2k: ['htj2k'],
  thumbnails: ['htj2kThumbnail', 'jlsThumbnail'],
  jls: ['jls'],
  lossy: ['lossy'],
};

/** `htj2k,thumbnails` -> the representations; `ConfigError` for an unknown name. */
export function parsePrepare(text: string): DerivedKind[] {
  const kinds = new Set<DerivedKind>();
  for (const name of text.split(',').map((s) => s.trim())) {
    const set = PREPARE_SETS[name];
    if (!set)
      throw new ConfigError(
        `--prepare: ${JSON.stringify(name)} is not one of ${Object.keys(PREPARE_SETS).join(', ')}`,
      );
    for (const kind of set) kinds.add(kind);
  }
  return [...kinds];
}

export interface PrepareProgress {
  /** Frames x representations to do. */
  total: number;
  done: number;
  /** Encoded by this run. */
  made: number;
  /** Found in a cache (an earlier run, or the server). */
  cached: number;
  failed: number;
  /** Instances whose frames are not derived (colour, NIfTI slices, other syntaxes). */
  skipped: number;
}

export interface PrepareOptions {
  catalog: Catalog;
  storage: Storage;
  derived: DerivedFrames;
  kinds: readonly DerivedKind[];
  prefix?: string;
  /** Frames encoded at once. */
  concurrency: number;
  signal?: AbortSignal;
  onProgress?: (progress: PrepareProgress) => void;
  /** Told about each frame that failed (the run goes on). */
  onFailure?: (instance: StoredInstance, frame: number, kind: DerivedKind, error: unknown) => void;
}

const PAGE = 500;

async function* instancesUnder(catalog: Catalog, prefix: string): AsyncGenerator<StoredInstance> {
  let after = '';
  for (;;) {
    const page = await catalog.instancesUnder(prefix, after, PAGE);
    yield* page;
    if (page.length < PAGE) return;
    after = page[page.length - 1].key;
  }
}

/** Runs the preparation; resolves with the final counts (`done < total` when interrupted). */
export async function prepareDerived(options: PrepareOptions): Promise<PrepareProgress> {
  const prefix = options.prefix ?? '';
  const progress: PrepareProgress = { total: 0, done: 0, made: 0, cached: 0, failed: 0, skipped: 0 };
  for await (const instance of instancesUnder(options.catalog, prefix)) {
    if (canDerive(instance) && !(instance.pixelData && 'nifti' in instance.pixelData))
      progress.total += (instance.numberOfFrames ?? 1) * options.kinds.length;
    else progress.skipped++;
  }
  options.onProgress?.({ ...progress });

  async function* work() {
    for await (const instance of instancesUnder(options.catalog, prefix)) {
      if (!canDerive(instance) || (instance.pixelData && 'nifti' in instance.pixelData)) continue;
      let table: Promise<FrameTable> | undefined;
      const frameTable = () =>
        (table ??= options.storage
          .open(instance.objectKey, { signal: options.signal })
          .then((source) => storedFrameTable(source, instance)));
      for (let frame = 1; frame <= (instance.numberOfFrames ?? 1); frame++) {
        for (const kind of options.kinds) yield { instance, frame, kind, frameTable };
      }
    }
  }
  // One generator shared by every runner: async generators queue concurrent next() calls.
  const items = work();
  const runner = async () => {
    for (;;) {
      if (options.signal?.aborted) return;
      const item = await items.next();
      if (item.done) return;
      const { instance, frame, kind, frameTable } = item.value;
      // The stored frame is read only when no cache had the derived one: then this run made it.
      let read = false;
      try {
        await options.derived.frame(
          instance,
          frame,
          kind,
          async (signal) => {
            read = true;
            return (await frameTable()).read(frame - 1, signal);
          },
          options.signal,
        );
        if (read) progress.made++;
        else progress.cached++;
      } catch (e) {
        if (options.signal?.aborted) return;
        progress.failed++;
        options.onFailure?.(instance, frame, kind, e);
      }
      progress.done++;
      options.onProgress?.({ ...progress });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, runner));
  return progress;
}
