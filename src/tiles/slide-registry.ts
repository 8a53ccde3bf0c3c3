// The open slides of the process: slide id → parsed `Slide`, kept in an LRU bounded by count
// (`--cache-slides`), opened once however many requests ask at the same time (singleflight).
// An entry is bound to the object's identity; it is re-checked against storage at most every
// `revalidateMs`, and dropped at once when a read reports the object was replaced.
//
//   get(id) -> LRU hit (fresh) | stat + compare identity (stale) | open: storage.open -> wrap -> detect
//
// A slide can span several objects (a DICOM WSI series): a folder id ending in `/` (`cases/42/`)
// opens every object listed directly under it, and a single-object open may ask for its folder's
// siblings. Such a slide's identity combines its objects' identities, and it is revalidated by
// listing the folder again (one list request) and comparing sizes and ETags/mtimes.
//
// Work that needs only level 0's stored tiles (`getBase`, `withLevel(id, 0, ...)`)
// may open a slide lazily (`openLazily`): a TIFF answers after its first directory, and the rest
// of its structure is read once something needs the whole slide (`get`), by one shared walk.
//
//   getBase(id) -> entry (whole, or lazy: level 0 only)      get(id) -> entry -> lazy? complete once

import { createHash } from 'node:crypto';
import { Cancelled, NotFound, ObjectChanged, UnsupportedFormat } from '../errors.js';
import type { LazySlide, Slide } from '../formats/slide.js';
import { ByteLru } from '../io/lru.js';
import { SharedFlight } from '../io/shared-flight.js';
import { validateKey } from '../storage/keys.js';
import type { ByteSource, ObjectInfo, Storage } from '../storage/types.js';

/** What a single-object open may ask of the registry beyond its own object. */
export interface OpenContext {
  /** The other candidate objects of the object's folder, opened and wrapped (listed once). */
  siblings: (signal?: AbortSignal) => Promise<ByteSource[]>;
}

/** Objects of one folder considered for a multi-object slide, at most. */
export const MAX_FOLDER_OBJECTS = 256;
/** Sibling names that may be DICOM instances: `.dcm`, or no extension / a UID as the name. */
const SIBLING_NAME = /(\.dcm|\/[^/.]+|\/[0-9.]+)$/i;

export interface OpenedSlide {
  id: string;
  slide: Slide;
  /** Identity of the object version this slide was parsed from (part of every cache key). */
  identity: string;
}

export interface SlideRegistryOptions {
  storage: Storage;
  /** Wraps each opened object with the block cache and coalescer (io/reader.ts). */
  wrap: (source: ByteSource) => ByteSource;
  /** Parses a slide (formats/detect.ts `openSlide`). */
  open: (source: ByteSource, signal?: AbortSignal, context?: OpenContext) => Promise<Slide>;
  /**
   * Parses as far as level 0 needs (formats/detect.ts `openSlideLazily`): used by `getBase`
   * when the slide is not open yet; without it `getBase` opens whole.
   */
  openLazily?: (
    source: ByteSource,
    signal?: AbortSignal,
    context?: OpenContext,
  ) => Promise<Slide | LazySlide>;
  /** Parses a slide made of several objects (a folder id ending in `/`); without it such ids are `not_found`. */
  openMany?: (sources: ByteSource[], signal?: AbortSignal) => Promise<Slide>;
  /** Slides kept open; 0 keeps none (every request opens again). */
  maxSlides: number;
  /** Re-stat an open slide's object at most this often to notice replacements. */
  revalidateMs: number;
  now?: () => number;
}

interface Entry {
  /** The slide; while `lazy` is set, the lazily opened one (level 0 only, `LazySlide.base`). */
  opened: OpenedSlide;
  /** A lazily opened slide whose structure has not been read whole yet. */
  lazy?: LazySlide;
  checkedAt: number;
  /** Multi-object slides: the folder listed, and a digest of the listing to revalidate against. */
  folder?: { prefix: string; fingerprint: string };
  /** The object's identity when `opened.identity` differs from it (see `complete`). */
  objectIdentity?: string;
}

export class SlideRegistry {
  private readonly lru: ByteLru<string, Entry>;
  private readonly opening = new SharedFlight<string, Entry>();
  private readonly completing = new SharedFlight<string, OpenedSlide>();
  private readonly now: () => number;
  opens = 0;
  revalidations = 0;

  constructor(private readonly options: SlideRegistryOptions) {
    this.lru = new ByteLru({ maxBytes: options.maxSlides, sizeOf: () => 1 });
    this.now = options.now ?? Date.now;
  }

  /** The parsed slide for `id`. Throws `InvalidId`, `NotFound`, `UnsupportedFormat`, `CorruptFile`, storage errors. */
  async get(id: string, signal?: AbortSignal): Promise<OpenedSlide> {
    const entry = await this.entry(id, false, signal);
    if (!entry.lazy) return entry.opened;
    try {
      return await this.complete(id, entry, entry.lazy, signal);
    } catch (e) {
      // Replaced since its first directory was read, or a walk that every caller before this
      // one gave up (a LazySlide is not walked twice): open again, whole, once.
      const abandoned = e instanceof Cancelled && signal?.aborted !== true;
      if (!(e instanceof ObjectChanged) && !abandoned) throw e;
      if (this.lru.peek(id)?.lazy === entry.lazy) this.lru.delete(id);
      const again = await this.entry(id, false, signal);
      return again.lazy ? this.complete(id, again, again.lazy, signal) : again.opened;
    }
  }

  /**
   * The slide for work that needs only level 0's stored tiles: a slide not open yet is opened
   * lazily (`openLazily`), and one still open lazily answers with level 0 alone (`levels` has
   * one entry, no associated images or vendor properties). Same errors as `get`.
   */
  async getBase(id: string, signal?: AbortSignal): Promise<OpenedSlide> {
    return (await this.entry(id, true, signal)).opened;
  }

  private async entry(id: string, lazy: boolean, signal: AbortSignal | undefined): Promise<Entry> {
    validateKey(id);
    const entry = this.lru.get(id);
    if (entry && this.now() - entry.checkedAt < this.options.revalidateMs) return entry;
    return this.opening.run(id, (sharedSignal) => this.load(id, entry, sharedSignal, lazy), signal);
  }

  /**
   * Reads the rest of a lazily opened slide (one walk, shared by every caller) and keeps the
   * whole slide in its entry. Level 0 stays the first directory's image unless a later
   * directory is larger (a malformed pyramid): then the level-0 tiles answered so far were of
   * another image, and a new identity keeps them apart in every cache and ETag.
   */
  private complete(
    id: string,
    entry: Entry,
    lazy: LazySlide,
    signal: AbortSignal | undefined,
  ): Promise<OpenedSlide> {
    const base = entry.opened;
    return this.completing.run(
      `${id}\0${base.identity}`,
      async (sharedSignal) => {
        let slide: Slide;
        try {
          slide = await lazy.complete(sharedSignal);
        } catch (e) {
          // Not kept: the next request opens the object again (it may have been replaced).
          if (this.lru.peek(id)?.lazy === lazy) this.lru.delete(id);
          throw e;
        }
        const same = slide.levels[0]?.grid === base.slide.levels[0].grid;
        const opened = { id, slide, identity: same ? base.identity : `${base.identity}+levels` };
        const current = this.lru.peek(id);
        if (current?.lazy === lazy) {
          this.lru.set(id, {
            opened,
            checkedAt: current.checkedAt,
            ...(same ? {} : { objectIdentity: base.identity }),
          });
        }
        return opened;
      },
      signal,
    );
  }

  /**
   * The identity of `id` when it is open and needs no revalidation yet, else undefined: what
   * `get` would answer without touching storage (the server's cached-image fast path).
   */
  freshIdentity(id: string): string | undefined {
    const entry = this.lru.get(id);
    return entry && this.now() - entry.checkedAt < this.options.revalidateMs
      ? entry.opened.identity
      : undefined;
  }

  /** Forgets `id` (its object was replaced, or it failed in a way worth re-opening for). */
  invalidate(id: string, identity?: string): void {
    const entry = this.lru.peek(id);
    if (entry && (identity === undefined || entry.opened.identity === identity)) this.lru.delete(id);
  }

  /**
   * Runs `fn` on the slide; if the object turns out to have been replaced meanwhile
   * (`ObjectChanged`), drops the entry and runs it once more on the new version.
   */
  withSlide<T>(
    id: string,
    signal: AbortSignal | undefined,
    fn: (opened: OpenedSlide) => Promise<T>,
  ): Promise<T> {
    return this.withLevel(id, undefined, signal, fn);
  }

  /**
   * `withSlide` for work on one level's stored tiles: for level 0 the slide is got with
   * `getBase` (a slide still open lazily answers with level 0 alone); for any other level, or
   * `undefined`, the whole slide.
   */
  async withLevel<T>(
    id: string,
    level: number | undefined,
    signal: AbortSignal | undefined,
    fn: (opened: OpenedSlide) => Promise<T>,
  ): Promise<T> {
    const get = (): Promise<OpenedSlide> => (level === 0 ? this.getBase(id, signal) : this.get(id, signal));
    const opened = await get();
    try {
      return await fn(opened);
    } catch (e) {
      if (!(e instanceof ObjectChanged)) throw e;
      this.invalidate(id, opened.identity);
      return fn(await get());
    }
  }

  stats() {
    const s = this.lru.stats();
    return { ...s, opens: this.opens, revalidations: this.revalidations };
  }

  private async load(
    id: string,
    stale: Entry | undefined,
    signal: AbortSignal,
    lazy: boolean,
  ): Promise<Entry> {
    if (stale) {
      this.revalidations++;
      const same = stale.folder
        ? fingerprint(await this.listFolder(stale.folder.prefix, signal)) === stale.folder.fingerprint
        : (await this.options.storage.stat(id, { signal })).identity ===
          (stale.objectIdentity ?? stale.opened.identity);
      if (same) {
        const renewed = { ...stale, checkedAt: this.now() };
        this.lru.set(id, renewed);
        return renewed;
      }
      this.lru.delete(id);
    }
    this.opens++;
    if (id.endsWith('/')) return this.loadFolder(id, signal);
    const source = this.options.wrap(await this.options.storage.open(id, { signal }));
    const slash = id.lastIndexOf('/');
    const prefix = slash < 0 ? '' : id.slice(0, slash + 1);
    let listed: ObjectInfo[] | undefined;
    const siblings = async (sibSignal?: AbortSignal): Promise<ByteSource[]> => {
      listed = await this.listFolder(prefix, sibSignal ?? signal);
      const candidates = listed.filter((o) => o.key !== id && SIBLING_NAME.test(`/${o.key}`));
      return this.openAll(candidates, sibSignal ?? signal);
    };
    const openLazily = lazy ? this.options.openLazily : undefined;
    const result = openLazily
      ? await openLazily(source, signal, { siblings })
      : await this.options.open(source, signal, { siblings });
    if ('complete' in result) {
      const entry: Entry = {
        opened: { id, slide: result.base, identity: source.identity },
        lazy: result,
        checkedAt: this.now(),
      };
      this.lru.set(id, entry);
      return entry;
    }
    const slide = result;
    const multi = listed !== undefined && slide.sources !== undefined && slide.sources.length > 1;
    const entry: Entry = {
      opened: { id, slide, identity: multi ? combinedIdentity(slide) : source.identity },
      checkedAt: this.now(),
      ...(multi && listed ? { folder: { prefix, fingerprint: fingerprint(listed) } } : {}),
    };
    this.lru.set(id, entry);
    return entry;
  }

  private async loadFolder(id: string, signal: AbortSignal): Promise<Entry> {
    if (!this.options.openMany) throw new NotFound(`no slide ${id}`);
    const listing = await this.listFolder(id, signal);
    if (listing.length === 0) throw new NotFound(`no objects under ${id}`);
    const slide = await this.options.openMany(await this.openAll(listing, signal), signal);
    const entry: Entry = {
      opened: { id, slide, identity: combinedIdentity(slide) },
      checkedAt: this.now(),
      folder: { prefix: id, fingerprint: fingerprint(listing) },
    };
    this.lru.set(id, entry);
    return entry;
  }

  /** The objects directly under `prefix` (not in sub-folders), at most MAX_FOLDER_OBJECTS. */
  private async listFolder(prefix: string, signal: AbortSignal): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.options.storage.list({ prefix, delimiter: '/', cursor, limit: 1000, signal });
      out.push(
        ...page.objects.filter((o) => o.key.startsWith(prefix) && !o.key.slice(prefix.length).includes('/')),
      );
      if (out.length > MAX_FOLDER_OBJECTS) {
        throw new UnsupportedFormat(
          `${prefix || 'the storage root'}: more than ${MAX_FOLDER_OBJECTS} objects in one slide folder`,
        );
      }
      cursor = page.nextCursor;
    } while (cursor);
    return out;
  }

  private async openAll(objects: readonly ObjectInfo[], signal: AbortSignal): Promise<ByteSource[]> {
    const out: ByteSource[] = new Array(objects.length);
    let next = 0;
    const worker = async () => {
      while (next < objects.length) {
        const i = next++;
        // A listing that carries each object's version (S3's ETag) opens it without a HEAD.
        const storage = this.options.storage;
        const opened = storage.openListed
          ? await storage.openListed(objects[i], { signal })
          : await storage.open(objects[i].key, { signal });
        out[i] = this.options.wrap(opened);
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, objects.length) }, worker));
    return out;
  }
}

/** One identity for a slide read from several objects: changes when any of them is replaced. */
function combinedIdentity(slide: Slide): string {
  const parts = (slide.sources ?? [slide.source]).map((s) => `${s.key}\0${s.identity}`).sort();
  return `multi-${createHash('sha256').update(parts.join('\n')).digest('base64url').slice(0, 32)}`;
}

/** A digest of a folder listing: keys, sizes and validators. */
function fingerprint(objects: readonly ObjectInfo[]): string {
  const parts = objects
    .map((o) => `${o.key}\0${o.size}\0${o.etag ?? ''}\0${o.lastModified?.getTime() ?? ''}`)
    .sort();
  return createHash('sha256').update(parts.join('\n')).digest('base64url');
}
