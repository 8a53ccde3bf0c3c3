import { describe, expect, it } from 'vitest';
import { Cancelled, ConfigError, InvalidRange, StorageUnavailable } from '../../src/errors.js';
import { BlockCache } from '../../src/io/block-cache.js';
import { MemorySource } from '../support/memory-source.js';

const BLOCK = 4096;

function cache(maxBytes = 1024 * 1024) {
  return new BlockCache({ maxBytes, blockSize: BLOCK });
}

function expected(source: MemorySource, offset: number, length: number) {
  return source.data.slice(offset, offset + length);
}

describe('BlockCache', () => {
  it('answers scattered small reads inside one block with one request', async () => {
    const source = MemorySource.pattern(64 * 1024);
    const blocks = cache();
    const reads: [number, number][] = [
      [8, 16],
      [1000, 12],
      [4000, 96],
      [200, 2],
    ];
    const concurrent = await Promise.all(reads.map(([o, l]) => blocks.read(source, o, l)));
    concurrent.forEach((bytes, i) => expect(bytes).toEqual(expected(source, ...reads[i])));
    for (const [o, l] of reads) expect(await blocks.read(source, o, l)).toEqual(expected(source, o, l));
    expect(source.calls).toEqual([
      { offset: 0, length: BLOCK, purpose: 'metadata', signal: expect.anything() },
    ]);
    expect(blocks.stats()).toMatchObject({ requests: 1, bytesFetched: BLOCK, blocks: 1 });
  });

  it('fetches a read spanning three missing blocks as one request, then serves it from cache', async () => {
    const source = MemorySource.pattern(64 * 1024);
    const blocks = cache();
    const offset = BLOCK + 100;
    const length = 2 * BLOCK + 500; // blocks 1, 2 and 3
    expect(await blocks.read(source, offset, length)).toEqual(expected(source, offset, length));
    expect(source.calls.map(({ offset, length }) => [offset, length])).toEqual([[BLOCK, 3 * BLOCK]]);

    expect(await blocks.read(source, offset + 7, length - 20)).toEqual(
      expected(source, offset + 7, length - 20),
    );
    expect(source.calls).toHaveLength(1);
    expect(blocks.stats()).toMatchObject({ hits: 3, misses: 3, blocks: 3, bytes: 3 * BLOCK });
  });

  it('fetches each run of adjacent missing blocks once around cached ones', async () => {
    const source = MemorySource.pattern(64 * 1024);
    const blocks = cache();
    await blocks.read(source, BLOCK + 1, 1); // block 1 cached
    source.calls.length = 0;
    expect(await blocks.read(source, 0, 4 * BLOCK)).toEqual(expected(source, 0, 4 * BLOCK));
    expect(source.calls.map(({ offset, length }) => [offset, length])).toEqual([
      [0, BLOCK],
      [2 * BLOCK, 2 * BLOCK],
    ]);
  });

  it('clips the last block to the object size', async () => {
    const source = MemorySource.pattern(10_000);
    const blocks = cache();
    expect(await blocks.read(source, 9000, 1000)).toEqual(expected(source, 9000, 1000));
    expect(source.calls.map(({ offset, length }) => [offset, length])).toEqual([[8192, 10_000 - 8192]]);
    expect(await blocks.read(source, 8192, 10_000 - 8192)).toEqual(expected(source, 8192, 10_000 - 8192));
    expect(source.calls).toHaveLength(1);
  });

  it('keeps no more than maxBytes, and refetches what it evicted', async () => {
    const source = MemorySource.pattern(64 * 1024);
    const blocks = cache(2 * BLOCK);
    for (const index of [0, 1, 2, 3]) {
      await blocks.read(source, index * BLOCK, 10);
      expect(blocks.stats().bytes).toBeLessThanOrEqual(2 * BLOCK);
    }
    expect(blocks.stats()).toMatchObject({ blocks: 2, evictions: 2 });
    source.calls.length = 0;
    await blocks.read(source, 3 * BLOCK, 10); // still cached
    await blocks.read(source, 0, 10); // evicted
    expect(source.calls.map((c) => c.offset)).toEqual([0]);
  });

  it('stores every block of a multi-block run as its own buffer, so eviction frees memory', async () => {
    const source = MemorySource.pattern(64 * 1024);
    const blocks = cache(2 * BLOCK);
    // A 4-block run: only the last two blocks fit and stay, each owning exactly BLOCK bytes.
    expect(await blocks.read(source, 0, 4 * BLOCK)).toEqual(expected(source, 0, 4 * BLOCK));
    expect(blocks.stats()).toMatchObject({ blocks: 2, bytes: 2 * BLOCK });
    source.calls.length = 0;
    await blocks.read(source, 3 * BLOCK, 1);
    await blocks.read(source, 2 * BLOCK, 1);
    expect(source.calls).toHaveLength(0);
  });

  it('never serves the blocks of a replaced object', async () => {
    const old = MemorySource.pattern(32 * 1024, { key: 'a.svs', identity: '32768:etag-1', seed: 1 });
    const replaced = MemorySource.pattern(32 * 1024, { key: 'a.svs', identity: '32768:etag-2', seed: 2 });
    expect(old.data).not.toEqual(replaced.data);
    const blocks = cache();
    expect(await blocks.read(old, 0, 100)).toEqual(expected(old, 0, 100));
    expect(await blocks.read(replaced, 0, 100)).toEqual(expected(replaced, 0, 100));
    expect(replaced.calls).toHaveLength(1);
  });

  it('keeps objects with the same identity but different keys apart', async () => {
    const a = MemorySource.pattern(8192, { key: 'a.tif', identity: 'same', seed: 3 });
    const b = MemorySource.pattern(8192, { key: 'b.tif', identity: 'same', seed: 4 });
    const blocks = cache();
    await blocks.read(a, 0, 10);
    expect(await blocks.read(b, 0, 10)).toEqual(expected(b, 0, 10));
  });

  it('shares in-flight blocks between concurrent overlapping reads', async () => {
    const source = MemorySource.pattern(64 * 1024);
    const blocks = cache();
    source.hold();
    const first = blocks.read(source, 0, 2 * BLOCK); // blocks 0-1
    const second = blocks.read(source, BLOCK + 10, 2 * BLOCK); // blocks 1-3: joins 1, fetches 2-3
    await source.waitForCalls(2);
    source.release();
    expect(await first).toEqual(expected(source, 0, 2 * BLOCK));
    expect(await second).toEqual(expected(source, BLOCK + 10, 2 * BLOCK));
    expect(source.calls.map(({ offset, length }) => [offset, length])).toEqual([
      [0, 2 * BLOCK],
      [2 * BLOCK, 2 * BLOCK],
    ]);
    expect(blocks.stats().joined).toBe(1);
  });

  it('answers 10 concurrent identical reads with one request', async () => {
    const source = MemorySource.pattern(64 * 1024);
    const blocks = cache();
    source.hold();
    const reads = Array.from({ length: 10 }, () => blocks.read(source, 300, 50));
    await source.waitForCalls(1);
    source.release();
    for (const bytes of await Promise.all(reads)) expect(bytes).toEqual(expected(source, 300, 50));
    expect(source.calls).toHaveLength(1);
  });

  it('cancels one caller without disturbing the other, and the fetch once both left', async () => {
    const source = MemorySource.pattern(64 * 1024);
    const blocks = cache();
    source.hold();
    const a = new AbortController();
    const b = new AbortController();
    const first = blocks.read(source, 0, 10, a.signal);
    const second = blocks.read(source, 0, 10, b.signal);
    a.abort();
    await expect(first).rejects.toBeInstanceOf(Cancelled);
    source.release();
    expect(await second).toEqual(expected(source, 0, 10));
    expect(source.aborted).toBe(0);

    source.hold();
    const c = new AbortController();
    const d = new AbortController();
    const third = blocks.read(source, BLOCK, 10, c.signal);
    const fourth = blocks.read(source, BLOCK, 10, d.signal);
    await source.waitForCalls(2);
    c.abort();
    d.abort();
    await expect(third).rejects.toBeInstanceOf(Cancelled);
    await expect(fourth).rejects.toBeInstanceOf(Cancelled);
    expect(source.aborted).toBe(1);
    source.release();
    // Nothing of the abandoned fetch was kept: the block is fetched again.
    expect(await blocks.read(source, BLOCK, 10)).toEqual(expected(source, BLOCK, 10));
    expect(source.calls).toHaveLength(3);
  });

  it('does not cache a failed read', async () => {
    const source = MemorySource.pattern(64 * 1024);
    const blocks = cache();
    const error = new StorageUnavailable('503');
    source.failNext(error);
    await expect(blocks.read(source, 0, 10)).rejects.toBe(error);
    expect(await blocks.read(source, 0, 10)).toEqual(expected(source, 0, 10));
    expect(source.calls).toHaveLength(2);
  });

  it('does not cache a short read, and reports it as a storage failure', async () => {
    const source = MemorySource.pattern(64 * 1024);
    const blocks = cache();
    source.answerShort(1);
    await expect(blocks.read(source, 0, 10)).rejects.toBeInstanceOf(StorageUnavailable);
    source.answerShort(0);
    expect(blocks.stats().blocks).toBe(0);
    expect(await blocks.read(source, 0, 10)).toEqual(expected(source, 0, 10));
    expect(source.calls).toHaveLength(2);
  });

  it('answers a copy, so a caller changing its bytes cannot corrupt the cache', async () => {
    const source = MemorySource.pattern(64 * 1024);
    const blocks = cache();
    const bytes = await blocks.read(source, 0, 10);
    bytes.fill(0xee);
    expect(await blocks.read(source, 0, 10)).toEqual(expected(source, 0, 10));
  });

  it('refuses ranges outside the object without a request', async () => {
    const source = MemorySource.pattern(10_000);
    const blocks = cache();
    await expect(blocks.read(source, 9999, 2)).rejects.toBeInstanceOf(InvalidRange);
    await expect(blocks.read(source, -1, 2)).rejects.toBeInstanceOf(InvalidRange);
    await expect(blocks.read(source, 1.5, 2)).rejects.toBeInstanceOf(InvalidRange);
    await expect(blocks.read(source, 0, Number.NaN)).rejects.toBeInstanceOf(InvalidRange);
    expect(await blocks.read(source, 10_000, 0)).toEqual(new Uint8Array(0));
    expect(source.calls).toHaveLength(0);
  });

  it('refuses a read whose signal already fired', async () => {
    const source = MemorySource.pattern(10_000);
    await expect(cache().read(source, 0, 1, AbortSignal.abort())).rejects.toBeInstanceOf(Cancelled);
    expect(source.calls).toHaveLength(0);
  });

  it('with maxBytes 0 caches nothing but still fetches runs whole', async () => {
    const source = MemorySource.pattern(64 * 1024);
    const blocks = cache(0);
    await blocks.read(source, 0, 10);
    await blocks.read(source, 0, 10);
    expect(source.calls).toHaveLength(2);
    expect(blocks.stats().bytes).toBe(0);
  });

  it('insists on a power-of-two block size', () => {
    expect(() => new BlockCache({ maxBytes: 1, blockSize: 3000 })).toThrow(ConfigError);
    expect(() => new BlockCache({ maxBytes: -1 })).toThrow(ConfigError);
    expect(new BlockCache({ maxBytes: 1 }).blockSize).toBe(64 * 1024);
  });
});
