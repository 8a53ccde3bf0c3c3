// The open slides of the process: slide id → parsed `Slide`, kept in an LRU bounded by count
// (`--cache-slides`), opened once however many requests ask at the same time (singleflight).
// An entry is bound to the object's identity; it is re-checked against storage at most every
// `revalidateMs`, and dropped at once when a read reports the object was replaced.
//
//   get(id) -> LRU hit (fresh) | stat + compare identity (stale) | open: storage.open -> wrap -> detect

import { ObjectChanged } from '../errors.js';
import type { Slide } from '../formats/slide.js';
import { ByteLru } from '../io/lru.js';
import { SharedFlight } from '../io/shared-flight.js';
import { validateKey } from '../storage/keys.js';
import type { ByteSource, Storage } from '../storage/types.js';

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
  open: (source: ByteSource, signal?: AbortSignal) => Promise<Slide>;
  /** Slides kept open; 0 keeps none (every request opens again). */
  maxSlides: number;
  /** Re-stat an open slide's object at most this often to notice replacements. */
  revalidateMs: number;
  now?: () => number;
}

interface Entry {
  opened: OpenedSlide;
  checkedAt: number;
}

export class SlideRegistry {
  private readonly lru: ByteLru<string, Entry>;
  private readonly opening = new SharedFlight<string, Entry>();
  private readonly now: () => number;
  opens = 0;
  revalidations = 0;

  constructor(private readonly options: SlideRegistryOptions) {
    this.lru = new ByteLru({ maxBytes: options.maxSlides, sizeOf: () => 1 });
    this.now = options.now ?? Date.now;
  }

  /** The parsed slide for `id`. Throws `InvalidId`, `NotFound`, `UnsupportedFormat`, `CorruptFile`, storage errors. */
  async get(id: string, signal?: AbortSignal): Promise<OpenedSlide> {
    validateKey(id);
    const entry = this.lru.get(id);
    if (entry && this.now() - entry.checkedAt < this.options.revalidateMs) return entry.opened;
    const fresh = await this.opening.run(id, (sharedSignal) => this.load(id, entry, sharedSignal), signal);
    return fresh.opened;
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
  async withSlide<T>(
    id: string,
    signal: AbortSignal | undefined,
    fn: (opened: OpenedSlide) => Promise<T>,
  ): Promise<T> {
    const opened = await this.get(id, signal);
    try {
      return await fn(opened);
    } catch (e) {
      if (!(e instanceof ObjectChanged)) throw e;
      this.invalidate(id, opened.identity);
      return fn(await this.get(id, signal));
    }
  }

  stats() {
    const s = this.lru.stats();
    return { ...s, opens: this.opens, revalidations: this.revalidations };
  }

  private async load(id: string, stale: Entry | undefined, signal: AbortSignal): Promise<Entry> {
    if (stale) {
      this.revalidations++;
      const stat = await this.options.storage.stat(id, { signal });
      if (stat.identity === stale.opened.identity) {
        const renewed = { opened: stale.opened, checkedAt: this.now() };
        this.lru.set(id, renewed);
        return renewed;
      }
      this.lru.delete(id);
    }
    this.opens++;
    const source = this.options.wrap(await this.options.storage.open(id, { signal }));
    const slide = await this.options.open(source, signal);
    const entry = { opened: { id, slide, identity: source.identity }, checkedAt: this.now() };
    this.lru.set(id, entry);
    return entry;
  }
}
