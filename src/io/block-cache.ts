// The cache for metadata reads (TIFF headers, IFDs, tag and offset arrays): small, scattered
// reads that would each cost a round trip to object storage. Bytes are kept in aligned blocks,
// one cache shared by every open object and bounded in bytes; a read is answered from cached
// blocks, and each run of adjacent missing blocks is fetched as ONE range request, shared with
// any concurrent read that needs the same blocks (singleflight per block).
//
//   read [off, off+len) -> blocks b..e -> cached? | in flight? (join) | missing runs -> 1 request each
//
// Blocks are keyed by the object's identity and key, so a replaced object (new ETag / size /
// mtime) can never be answered with the old object's bytes; its stale blocks age out of the LRU.
//
// With a shared store (Redis, `--redis-url`) a missing run is first looked up there (one round
// trip), and the blocks fetched from storage are offered to it: every replica then parses a
// slide, and finds the tile offsets another one already read, without a range request.

import { ConfigError, throwIfAborted } from '../errors.js';
import type { ByteSource } from '../storage/types.js';
import { ByteLru } from './lru.js';
import { assertLength, assertRange } from './range.js';
import { SharedTask } from './shared-flight.js';

export const DEFAULT_BLOCK_SIZE = 64 * 1024;

/**
 * A second level for blocks, shared by every replica. `object` names one version of one object
 * at one block size. It is an optimisation: `getBlocks` never rejects (a failure reads as all
 * missing) and `setBlocks` is fire and forget.
 */
export interface SharedBlockStore {
  /** The blocks at `indices`, undefined where the store has none. */
  getBlocks(object: string, indices: readonly number[]): Promise<(Uint8Array | undefined)[]>;
  setBlocks(object: string, blocks: ReadonlyArray<readonly [number, Uint8Array]>): void;
}

export interface BlockCacheOptions {
  /** Bound on cached bytes; 0 disables caching (reads still share in-flight fetches). */
  maxBytes: number;
  /** Power of two, default 64 KiB: one block holds a typical IFD with its small tag arrays. */
  blockSize?: number;
  shared?: SharedBlockStore;
}

export interface BlockCacheStats {
  /** Blocks answered from the cache. */
  hits: number;
  /** Blocks not in the cache when asked for (fetched, or joined while in flight). */
  misses: number;
  /** Missing blocks that were already being fetched for another read. */
  joined: number;
  /** Range requests sent to storage. */
  requests: number;
  /** Blocks answered by the shared store instead of storage. */
  sharedHits: number;
  /** Bytes received from storage. */
  bytesFetched: number;
  /** Bytes held now. */
  bytes: number;
  blocks: number;
  evictions: number;
  maxBytes: number;
  blockSize: number;
}

/** One range request covering blocks [first, first + count) of one object. */
interface BlockRun {
  first: number;
  task: SharedTask<Uint8Array>;
}

export class BlockCache {
  readonly blockSize: number;
  private readonly lru: ByteLru<string, Uint8Array>;
  /** Block key -> the run fetching it, while that fetch runs. */
  private readonly pending = new Map<string, BlockRun>();
  private readonly shared?: SharedBlockStore;

  /** Whether blocks are shared with other replicas (Redis): worth reading metadata through it. */
  get sharesBlocks(): boolean {
    return this.shared !== undefined;
  }
  private joined = 0;
  private requests = 0;
  private sharedHits = 0;
  private bytesFetched = 0;

  constructor(options: BlockCacheOptions) {
    const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
    if (!Number.isSafeInteger(blockSize) || blockSize < 512 || (blockSize & (blockSize - 1)) !== 0) {
      throw new ConfigError(`block size must be a power of two >= 512, got ${blockSize}`);
    }
    if (!Number.isFinite(options.maxBytes) || options.maxBytes < 0) {
      throw new ConfigError(`block cache size must be >= 0 bytes, got ${options.maxBytes}`);
    }
    this.blockSize = blockSize;
    this.shared = options.shared;
    this.lru = new ByteLru({ maxBytes: options.maxBytes, sizeOf: (block) => block.byteLength });
  }

  /**
   * Exactly `length` bytes at `offset` of `source`. The answer is a fresh copy: cached blocks
   * are shared by every reader of the object, and a caller that patched its bytes in place
   * (splicing JPEG tables, say) must not corrupt them for the next one. Metadata reads are
   * small, so the copy costs little.
   */
  async read(source: ByteSource, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    assertRange(source, offset, length);
    throwIfAborted(signal);
    if (length === 0) return new Uint8Array(0);
    const size = this.blockSize;
    const first = Math.floor(offset / size);
    const last = Math.floor((offset + length - 1) / size);
    const prefix = blockKeyPrefix(source);

    const blocks = new Array<Uint8Array | BlockRun>(last - first + 1);
    const runs: BlockRun[] = [];
    let missingFrom = -1;
    for (let index = first; index <= last + 1; index++) {
      let found: Uint8Array | BlockRun | undefined;
      if (index <= last) {
        const key = prefix + index;
        found = this.lru.get(key);
        if (found === undefined) {
          found = this.pending.get(key);
          if (found !== undefined) {
            this.joined++;
            if (!runs.includes(found)) runs.push(found);
          }
        }
      }
      if (found === undefined && index <= last) {
        if (missingFrom < 0) missingFrom = index;
        continue;
      }
      if (missingFrom >= 0) {
        const run = this.fetchRun(source, prefix, missingFrom, index - missingFrom);
        runs.push(run);
        for (let i = missingFrom; i < index; i++) blocks[i - first] = run;
        missingFrom = -1;
      }
      if (found !== undefined) blocks[index - first] = found;
    }

    const runBytes = runs.length === 0 ? [] : await Promise.all(runs.map((run) => run.task.join(signal)));

    const out = new Uint8Array(length);
    for (let index = first; index <= last; index++) {
      const entry = blocks[index - first];
      let block: Uint8Array;
      let blockStart = index * size;
      if (entry instanceof Uint8Array) {
        block = entry;
      } else {
        block = runBytes[runs.indexOf(entry)];
        blockStart = entry.first * size;
      }
      // Copy the part of [offset, offset+length) that lies in this block (or run).
      const from = Math.max(offset, index * size);
      const to = Math.min(offset + length, (index + 1) * size);
      out.set(block.subarray(from - blockStart, to - blockStart), from - offset);
    }
    return out;
  }

  stats(): BlockCacheStats {
    const lru = this.lru.stats();
    return {
      hits: lru.hits,
      misses: lru.misses,
      joined: this.joined,
      requests: this.requests,
      sharedHits: this.sharedHits,
      bytesFetched: this.bytesFetched,
      bytes: lru.bytes,
      blocks: lru.entries,
      evictions: lru.evictions,
      maxBytes: lru.maxBytes,
      blockSize: this.blockSize,
    };
  }

  /** Drops every cached block (in-flight fetches finish and are cached as usual). */
  clear(): void {
    this.lru.clear();
  }

  /**
   * Starts fetching `count` blocks from `first`, clipped to the object's end: from the shared
   * store when it has all of them, otherwise as one range request.
   */
  private fetchRun(source: ByteSource, prefix: string, first: number, count: number): BlockRun {
    const size = this.blockSize;
    const start = first * size;
    const length = Math.min(source.size, (first + count) * size) - start;
    const keys: string[] = [];
    for (let i = 0; i < count; i++) keys.push(prefix + (first + i));

    const forget = () => {
      for (const key of keys) if (this.pending.get(key) === run) this.pending.delete(key);
    };
    const keep = (i: number, block: Uint8Array) => {
      // Own each block's memory: a block sharing a larger buffer (the rest of its run, or
      // Node's 8 KiB Buffer pool) would keep that buffer alive and make the byte bound a lie.
      if (this.lru.maxBytes > 0) this.lru.set(keys[i], ownedCopy(block));
    };
    const fetch = async (signal: AbortSignal): Promise<Uint8Array> => {
      const sharedKey = this.shared ? `${size}\u0000${prefix}` : '';
      if (this.shared) {
        const found = await this.shared.getBlocks(sharedKey, blockIndices(first, count));
        throwIfAborted(signal);
        // All there with the lengths this object's blocks have: answered without storage.
        if (found.every((block, i) => block?.byteLength === Math.min(size, length - i * size))) {
          this.sharedHits += count;
          const bytes = new Uint8Array(length);
          found.forEach((block, i) => {
            bytes.set(block!, i * size);
            keep(i, block!);
          });
          return bytes;
        }
      }
      this.requests++;
      const bytes = await source.read(start, length, { signal, purpose: 'metadata' });
      assertLength(source, start, bytes, length);
      this.bytesFetched += length;
      const blocks: [number, Uint8Array][] = [];
      for (let i = 0; i < count; i++) {
        const block = bytes.subarray(i * size, Math.min(length, (i + 1) * size));
        keep(i, block);
        blocks.push([first + i, block]);
      }
      this.shared?.setBlocks(sharedKey, blocks);
      return bytes;
    };
    const run: BlockRun = { first, task: new SharedTask(fetch, forget) };
    for (const key of keys) this.pending.set(key, run);
    return run;
  }
}

function blockIndices(first: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => first + i);
}

/** Separates blocks of different objects, and of different versions of one object. */
function blockKeyPrefix(source: ByteSource): string {
  return `${source.identity}\u0000${source.key}\u0000`;
}

function ownedCopy(view: Uint8Array): Uint8Array {
  if (view.byteOffset === 0 && view.byteLength === view.buffer.byteLength) return view;
  return view.slice();
}
