// Slides the AI layer derives (heat-map pyramids), kept in memory under a reserved key prefix
// and served by the slide registry like any stored slide: `overlay(storage)` is the storage the
// registry opens from, answering `stat`/`open` for derived keys itself and passing every other
// key (and every listing) to the real store. So tiles, IIIF and Deep Zoom of a heat map go
// through the unchanged tile path, and a derived slide never appears in a slide listing. A key
// this process does not hold is asked of a loader (`load`): heat-map pyramids are rebuilt from
// their job's grid, which every replica can read, so any replica serves any map.

import { createHash } from 'node:crypto';
import { InvalidRange, NotFound } from '../errors.js';
import type { ByteSource, ObjectStat, Storage } from '../storage/types.js';

/** Keys under this prefix are derived slides (no stored object may be named so). */
export const DERIVED_PREFIX = '_derived/ai/';

interface Derived {
  bytes: Uint8Array;
  identity: string;
  lastModified: Date;
}

/** Rebuilds a derived slide this process does not hold, by name; undefined: there is none. */
export type DerivedLoader = (name: string) => Promise<Uint8Array | undefined>;

export class DerivedSlides {
  private readonly objects = new Map<string, Derived>();
  private readonly loading = new Map<string, Promise<Derived>>();
  private loader?: DerivedLoader;

  /** Most derived slides kept (oldest dropped first). */
  constructor(private readonly keep = 100) {}

  /** Where missing keys are rebuilt from (the AI service sets it once). */
  load(loader: DerivedLoader): void {
    this.loader = loader;
  }

  /** Stores `bytes` (a pyramidal TIFF) as `<prefix><name>`; returns the slide id. */
  put(name: string, bytes: Uint8Array): string {
    const key = DERIVED_PREFIX + name;
    const digest = createHash('sha256').update(bytes).digest('base64url').slice(0, 16);
    this.objects.delete(key);
    this.objects.set(key, { bytes, identity: `derived-${bytes.length}-${digest}`, lastModified: new Date() });
    while (this.objects.size > this.keep) this.objects.delete(this.objects.keys().next().value as string);
    return key;
  }

  /** The derived slide at `key`: held, or rebuilt once by the loader (concurrent asks share it). */
  private async get(key: string): Promise<Derived> {
    const held = this.objects.get(key);
    if (held) return held;
    let pending = this.loading.get(key);
    if (!pending) {
      const loader = this.loader;
      pending = (async () => {
        const bytes = loader ? await loader(key.slice(DERIVED_PREFIX.length)) : undefined;
        if (!bytes)
          throw new NotFound(`no derived slide ${key} (heat maps are kept for a while, then dropped)`);
        this.put(key.slice(DERIVED_PREFIX.length), bytes);
        return this.objects.get(key)!;
      })().finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  /** The storage the slide registry reads from: derived keys here, everything else from `base`. */
  overlay(base: Storage): Storage {
    const get = (key: string): Promise<Derived> => this.get(key);
    return {
      kind: base.kind,
      description: base.description,
      async stat(key, options) {
        if (!key.startsWith(DERIVED_PREFIX)) return base.stat(key, options);
        const d = await get(key);
        return {
          key,
          size: d.bytes.length,
          identity: d.identity,
          lastModified: d.lastModified,
        } satisfies ObjectStat;
      },
      async open(key, options) {
        if (!key.startsWith(DERIVED_PREFIX)) return base.open(key, options);
        return memorySource(key, await get(key));
      },
      list: (options) => base.list(options),
      // Listed objects are never derived ones (those are not listed): the base opens them.
      ...(base.openListed ? { openListed: base.openListed.bind(base) } : {}),
      close: () => base.close(),
    };
  }
}

function memorySource(key: string, d: Derived): ByteSource {
  return {
    key,
    size: d.bytes.length,
    identity: d.identity,
    async read(offset, length) {
      if (offset < 0 || length <= 0 || offset + length > d.bytes.length)
        throw new InvalidRange(
          `read of ${length} bytes at ${offset} is outside ${key} (${d.bytes.length} bytes)`,
        );
      return d.bytes.subarray(offset, offset + length);
    },
  };
}
