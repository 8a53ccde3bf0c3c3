import { describe, expect, it } from 'vitest';
import { BlockCache } from '../../src/io/block-cache.js';
import { CoalescerStats } from '../../src/io/coalesce.js';
import { CachedSource, createReaderFactory } from '../../src/io/reader.js';
import { MemorySource } from '../support/memory-source.js';

describe('createReaderFactory', () => {
  it('routes metadata reads through the shared block cache', async () => {
    const blockCache = new BlockCache({ maxBytes: 1 << 20, blockSize: 4096 });
    const wrap = createReaderFactory({ blockCache });
    const inner = MemorySource.pattern(100_000);
    const source = wrap(inner);
    expect(await source.read(10, 8, { purpose: 'metadata' })).toEqual(inner.data.slice(10, 18));
    expect(await source.read(300, 40, { purpose: 'metadata' })).toEqual(inner.data.slice(300, 340));
    expect(inner.calls.map(({ offset, length, purpose }) => [offset, length, purpose])).toEqual([
      [0, 4096, 'metadata'],
    ]);
    expect(blockCache.stats().hits).toBe(1);

    // A second source of the same process shares the cache but not the blocks.
    const other = wrap(MemorySource.pattern(100_000, { key: 'other.tif', seed: 9 }));
    await other.read(10, 8, { purpose: 'metadata' });
    expect(blockCache.stats().blocks).toBe(2);
  });

  it('routes data reads, and reads without a purpose, through the coalescer, exactly as asked', async () => {
    const coalescerStats = new CoalescerStats();
    const wrap = createReaderFactory({
      blockCache: new BlockCache({ maxBytes: 1 << 20 }),
      gapBytes: 100,
      coalescerStats,
    });
    const inner = MemorySource.pattern(100_000);
    const source = wrap(inner);
    const [a, b, c] = await Promise.all([
      source.read(1000, 500, { purpose: 'data' }),
      source.read(1550, 500),
      source.read(50_000, 10),
    ]);
    expect(a).toEqual(inner.data.slice(1000, 1500));
    expect(b).toEqual(inner.data.slice(1550, 2050));
    expect(c).toEqual(inner.data.slice(50_000, 50_010));
    expect(inner.calls.map(({ offset, length, purpose }) => [offset, length, purpose])).toEqual([
      [1000, 1050, 'data'],
      [50_000, 10, 'data'],
    ]);
    expect(coalescerStats.snapshot()).toMatchObject({ reads: 3, requests: 2, bytesFetched: 1060 });
  });

  it('mirrors the wrapped source and does not wrap twice', () => {
    const wrap = createReaderFactory({ blockCache: new BlockCache({ maxBytes: 0 }) });
    const inner = MemorySource.pattern(1234, { key: 'x/y.svs', identity: '1234:abc' });
    const source = wrap(inner);
    expect(source).toBeInstanceOf(CachedSource);
    expect([source.key, source.size, source.identity]).toEqual(['x/y.svs', 1234, '1234:abc']);
    expect((source as CachedSource).inner).toBe(inner);
    expect(wrap(source)).toBe(source);
  });
});
