// The ByteSource the format readers actually read through: one storage object wrapped with the
// process-wide block cache (for metadata) and its own range coalescer (for tile data). Formats
// only say what a read is for (`purpose`); this is the one place that decides how it is fetched.
//
//   formats/ --read(off, len, {purpose})--> CachedSource --metadata--> BlockCache --\
//                                                       \--data------> RangeCoalescer --> ByteSource

import type { ByteSource, ReadOptions } from '../storage/types.js';
import type { BlockCache } from './block-cache.js';
import { RangeCoalescer, type CoalescerStats } from './coalesce.js';

export class CachedSource implements ByteSource {
  readonly key: string;
  readonly size: number;
  readonly identity: string;

  constructor(
    /** The storage backend's source this one reads from. */
    readonly inner: ByteSource,
    private readonly blockCache: BlockCache,
    private readonly coalescer: RangeCoalescer,
  ) {
    this.key = inner.key;
    this.size = inner.size;
    this.identity = inner.identity;
  }

  /**
   * Whether metadata read through the block cache is shared with other replicas: then an exact
   * read that bypasses it (a format's read-ahead of a file's tail) would cost every replica a
   * range request that the shared blocks spare them.
   */
  get sharesMetadata(): boolean {
    return this.blockCache.sharesBlocks;
  }

  /** `metadata` reads go through the block cache; tile data (the default) is coalesced, never cached here. */
  read(offset: number, length: number, options?: ReadOptions): Promise<Uint8Array> {
    if (options?.purpose === 'metadata') {
      return this.blockCache.read(this.inner, offset, length, options.signal);
    }
    return this.coalescer.read(offset, length, options?.signal);
  }
}

export interface ReaderFactoryOptions {
  /** Shared by every source of the process (built once in cli/). */
  blockCache: BlockCache;
  gapBytes?: number;
  maxRequestBytes?: number;
  /** Counters that every source's coalescer adds to, for `/metrics`. */
  coalescerStats?: CoalescerStats;
}

/** Wraps each opened source for reading by the formats; a source already wrapped is returned as is. */
export function createReaderFactory(options: ReaderFactoryOptions): (source: ByteSource) => ByteSource {
  return (source) => {
    if (source instanceof CachedSource) return source;
    const coalescer = new RangeCoalescer(source, {
      gapBytes: options.gapBytes,
      maxRequestBytes: options.maxRequestBytes,
      stats: options.coalescerStats,
    });
    return new CachedSource(source, options.blockCache, coalescer);
  };
}
