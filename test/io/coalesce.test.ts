import { describe, expect, it } from 'vitest';
import { Cancelled, ConfigError, InvalidRange, StorageUnavailable } from '../../src/errors.js';
import { CoalescerStats, RangeCoalescer } from '../../src/io/coalesce.js';
import { MemorySource, sameBytes } from '../support/memory-source.js';

const KiB = 1024;

function expected(source: MemorySource, offset: number, length: number) {
  return source.data.slice(offset, offset + length);
}

function ranges(source: MemorySource) {
  return source.calls.map(({ offset, length }) => [offset, length]);
}

describe('RangeCoalescer', () => {
  it('merges reads issued together with small gaps into one request, each caller getting its own bytes', async () => {
    const source = MemorySource.pattern(1024 * KiB);
    const coalescer = new RangeCoalescer(source, { gapBytes: 16 * KiB });
    const tiles: [number, number][] = [
      [100 * KiB, 20 * KiB],
      [130 * KiB, 15 * KiB], // 10 KiB gap
      [145 * KiB, 30 * KiB], // adjacent
      [180 * KiB, 8 * KiB], // 5 KiB gap
    ];
    // Issued in a scrambled order: grouping must not depend on it.
    const order = [2, 0, 3, 1];
    const answers = await Promise.all(order.map((i) => coalescer.read(...tiles[i])));
    answers.forEach((bytes, k) => expect(sameBytes(bytes, expected(source, ...tiles[order[k]]))).toBe(true));
    expect(ranges(source)).toEqual([[100 * KiB, 88 * KiB]]);
    expect(source.calls[0].purpose).toBe('data');
    expect(coalescer.stats.snapshot()).toEqual({
      reads: 4,
      joined: 0,
      batches: 1,
      requests: 1,
      bytesRequested: 73 * KiB,
      bytesFetched: 88 * KiB,
    });
  });

  it('sends reads far apart as separate requests', async () => {
    const source = MemorySource.pattern(1024 * KiB);
    const coalescer = new RangeCoalescer(source, { gapBytes: 16 * KiB });
    const [a, b] = await Promise.all([coalescer.read(0, 10 * KiB), coalescer.read(500 * KiB, 10 * KiB)]);
    expect(a).toEqual(expected(source, 0, 10 * KiB));
    expect(b).toEqual(expected(source, 500 * KiB, 10 * KiB));
    expect(ranges(source)).toEqual([
      [0, 10 * KiB],
      [500 * KiB, 10 * KiB],
    ]);
  });

  it('merges a gap of exactly gapBytes but not one byte more', async () => {
    const source = MemorySource.pattern(1024 * KiB);
    const coalescer = new RangeCoalescer(source, { gapBytes: 1000 });
    await Promise.all([coalescer.read(0, 100), coalescer.read(1100, 100)]);
    expect(ranges(source)).toEqual([[0, 1200]]);
    source.calls.length = 0;
    await Promise.all([coalescer.read(0, 100), coalescer.read(1101, 100)]);
    expect(ranges(source)).toEqual([
      [0, 100],
      [1101, 100],
    ]);
  });

  it('fetches a lone tile read exactly: no block inflation, no waste', async () => {
    const source = MemorySource.pattern(1024 * KiB);
    const coalescer = new RangeCoalescer(source);
    const bytes = await coalescer.read(12_345, 6789);
    expect(bytes).toEqual(expected(source, 12_345, 6789));
    expect(ranges(source)).toEqual([[12_345, 6789]]);
    const stats = coalescer.stats.snapshot();
    expect(stats.bytesFetched).toBe(6789);
    expect(stats.bytesRequested).toBe(6789);
  });

  it('splits a merge that would exceed maxRequestBytes', async () => {
    const source = MemorySource.pattern(1024 * KiB);
    const coalescer = new RangeCoalescer(source, { gapBytes: 16 * KiB, maxRequestBytes: 64 * KiB });
    const reads = [0, 1, 2, 3, 4].map((i) => coalescer.read(i * 30 * KiB, 30 * KiB));
    const answers = await Promise.all(reads);
    answers.forEach((bytes, i) =>
      expect(sameBytes(bytes, expected(source, i * 30 * KiB, 30 * KiB))).toBe(true),
    );
    expect(ranges(source)).toEqual([
      [0, 60 * KiB],
      [60 * KiB, 60 * KiB],
      [120 * KiB, 30 * KiB],
    ]);
  });

  it('sends a single read larger than maxRequestBytes alone, whole', async () => {
    const source = MemorySource.pattern(1024 * KiB);
    const coalescer = new RangeCoalescer(source, { maxRequestBytes: 64 * KiB });
    expect(sameBytes(await coalescer.read(0, 200 * KiB), expected(source, 0, 200 * KiB))).toBe(true);
    expect(ranges(source)).toEqual([[0, 200 * KiB]]);
  });

  it('merges overlapping reads', async () => {
    const source = MemorySource.pattern(1024 * KiB);
    const coalescer = new RangeCoalescer(source, { gapBytes: 0 });
    const [a, b] = await Promise.all([coalescer.read(0, 1000), coalescer.read(500, 1000)]);
    expect(a).toEqual(expected(source, 0, 1000));
    expect(b).toEqual(expected(source, 500, 1000));
    expect(ranges(source)).toEqual([[0, 1500]]);
  });

  it('answers identical concurrent reads with one request, before and after it was sent', async () => {
    const source = MemorySource.pattern(1024 * KiB);
    const coalescer = new RangeCoalescer(source);
    source.hold();
    const batched = Array.from({ length: 5 }, () => coalescer.read(4096, 1000));
    await source.waitForCalls(1);
    const late = coalescer.read(4096, 1000); // the request is in flight now
    source.release();
    for (const bytes of await Promise.all([...batched, late]))
      expect(bytes).toEqual(expected(source, 4096, 1000));
    expect(source.calls).toHaveLength(1);
    expect(coalescer.stats.snapshot()).toMatchObject({
      reads: 6,
      joined: 5,
      requests: 1,
      bytesRequested: 1000,
    });
    // Nothing is cached once it completed: the same read later is a new request.
    await coalescer.read(4096, 1000);
    expect(source.calls).toHaveLength(2);
  });

  it('leaves out of the request a read cancelled before the batch was sent', async () => {
    const source = MemorySource.pattern(1024 * KiB);
    const coalescer = new RangeCoalescer(source);
    const gone = new AbortController();
    const cancelled = coalescer.read(0, 1000, gone.signal);
    const kept = coalescer.read(2000, 1000);
    gone.abort();
    await expect(cancelled).rejects.toBeInstanceOf(Cancelled);
    expect(await kept).toEqual(expected(source, 2000, 1000));
    expect(ranges(source)).toEqual([[2000, 1000]]);
  });

  it('aborts a merged request only when every one of its callers aborted', async () => {
    const source = MemorySource.pattern(1024 * KiB);
    const coalescer = new RangeCoalescer(source);
    source.hold();
    const a = new AbortController();
    const b = new AbortController();
    const first = coalescer.read(0, 1000, a.signal);
    const second = coalescer.read(1500, 1000, b.signal);
    await source.waitForCalls(1);
    a.abort();
    await expect(first).rejects.toBeInstanceOf(Cancelled);
    expect(source.calls[0].signal!.aborted).toBe(false);
    source.release();
    expect(await second).toEqual(expected(source, 1500, 1000));
    expect(source.aborted).toBe(0);

    source.hold();
    const c = new AbortController();
    const d = new AbortController();
    const third = coalescer.read(0, 1000, c.signal);
    const fourth = coalescer.read(1500, 1000, d.signal);
    await source.waitForCalls(2);
    c.abort();
    d.abort();
    await expect(third).rejects.toBeInstanceOf(Cancelled);
    await expect(fourth).rejects.toBeInstanceOf(Cancelled);
    expect(source.aborted).toBe(1);
    source.release();
  });

  it('shares a failure with every caller of the merged request, and retries nothing itself', async () => {
    const source = MemorySource.pattern(1024 * KiB);
    const coalescer = new RangeCoalescer(source);
    const error = new StorageUnavailable('reset', { code: 'connection_error' });
    source.failNext(error);
    const results = await Promise.allSettled([coalescer.read(0, 100), coalescer.read(200, 100)]);
    expect(results).toEqual([
      { status: 'rejected', reason: error },
      { status: 'rejected', reason: error },
    ]);
    expect(await coalescer.read(0, 100)).toEqual(expected(source, 0, 100));
    expect(source.calls).toHaveLength(2);
  });

  it('rejects a short answer from storage', async () => {
    const source = MemorySource.pattern(1024 * KiB);
    source.answerShort(1);
    await expect(new RangeCoalescer(source).read(0, 100)).rejects.toBeInstanceOf(StorageUnavailable);
  });

  it('refuses ranges outside the object without a request', async () => {
    const source = MemorySource.pattern(1000);
    const coalescer = new RangeCoalescer(source);
    await expect(coalescer.read(900, 101)).rejects.toBeInstanceOf(InvalidRange);
    await expect(coalescer.read(-5, 10)).rejects.toBeInstanceOf(InvalidRange);
    await expect(coalescer.read(0, 10, AbortSignal.abort())).rejects.toBeInstanceOf(Cancelled);
    expect(source.calls).toHaveLength(0);
  });

  it('adds to shared stats and validates its options', async () => {
    const stats = new CoalescerStats();
    const one = new RangeCoalescer(MemorySource.pattern(1000), { stats });
    const two = new RangeCoalescer(MemorySource.pattern(1000), { stats });
    await Promise.all([one.read(0, 10), two.read(0, 10)]);
    expect(stats.snapshot()).toMatchObject({ reads: 2, requests: 2, batches: 2, bytesFetched: 20 });
    expect(() => new RangeCoalescer(MemorySource.pattern(1), { gapBytes: -1 })).toThrow(ConfigError);
    expect(() => new RangeCoalescer(MemorySource.pattern(1), { maxRequestBytes: 0 })).toThrow(ConfigError);
  });
});
