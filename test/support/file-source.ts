// Byte sources for the format tests: a file opened the way the server does (LocalStorage ->
// CachedSource with a 64 KiB-block BlockCache and a RangeCoalescer) with a count of the read
// requests and bytes that reach the file, so tests can assert what opening a slide or reading
// a tile costs; and an in-memory source for generated and mutated files.

import path from 'node:path';
import { BlockCache } from '../../src/io/block-cache.js';
import { RangeCoalescer } from '../../src/io/coalesce.js';
import { CachedSource } from '../../src/io/reader.js';
import { LocalStorage } from '../../src/storage/local.js';
import { InvalidRange, throwIfAborted } from '../../src/errors.js';
import type { ByteSource, ReadOptions, StorageRequestEvent } from '../../src/storage/types.js';

/** Read requests that reached storage, and their bytes. */
export class ReadCounter {
  requests = 0;
  bytes = 0;
  readonly ranges: { bytes: number }[] = [];

  onRequest(event: StorageRequestEvent): void {
    if (event.kind !== 'read' || event.outcome !== 'ok') return;
    this.requests++;
    this.bytes += event.bytes;
    this.ranges.push({ bytes: event.bytes });
  }

  snapshot(): { requests: number; bytes: number } {
    return { requests: this.requests, bytes: this.bytes };
  }

  reset(): void {
    this.requests = 0;
    this.bytes = 0;
    this.ranges.length = 0;
  }
}

export interface CountedFile {
  /** What the formats read through: block-cached metadata, coalesced data. */
  source: ByteSource;
  /** The bare file source under the caches. */
  file: ByteSource;
  counter: ReadCounter;
  blockCache: BlockCache;
  close(): Promise<void>;
}

/** Opens the file at `filePath` behind a fresh 64 KiB-block cache, counting the requests. */
export async function openCounted(
  filePath: string,
  options: { blockSize?: number } = {},
): Promise<CountedFile> {
  const counter = new ReadCounter();
  const storage = await LocalStorage.create(path.dirname(filePath), { observer: counter });
  const file = await storage.open(path.basename(filePath));
  const blockCache = new BlockCache({
    maxBytes: 64 * 1024 * 1024,
    blockSize: options.blockSize ?? 64 * 1024,
  });
  const source = new CachedSource(file, blockCache, new RangeCoalescer(file));
  return { source, file, counter, blockCache, close: () => storage.close() };
}

/** A ByteSource over bytes in memory (mutated fixtures, generated TIFFs) that logs its reads. */
export class BytesSource implements ByteSource {
  readonly identity: string;
  readonly reads: { offset: number; length: number; purpose: ReadOptions['purpose'] }[] = [];

  constructor(
    readonly bytes: Uint8Array,
    readonly key = 'memory.tif',
  ) {
    this.identity = `${bytes.byteLength}:memory`;
  }

  get size(): number {
    return this.bytes.byteLength;
  }

  async read(offset: number, length: number, options: ReadOptions = {}): Promise<Uint8Array> {
    throwIfAborted(options.signal);
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length <= 0 ||
      offset + length > this.size
    ) {
      throw new InvalidRange(`[${offset}, +${length}) is outside ${this.key} (${this.size} bytes)`);
    }
    this.reads.push({ offset, length, purpose: options.purpose });
    return this.bytes.slice(offset, offset + length);
  }
}
