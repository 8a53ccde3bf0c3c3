// The io/ layer in front of a real HTTP server that honours Range (test/support/range-server.ts),
// read through the real HTTP backend: singleflight, block caching and coalescing are proven by
// counting the requests that reach the server, and cancellation by the responses it saw abandoned.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Cancelled } from '../../src/errors.js';
import { BlockCache } from '../../src/io/block-cache.js';
import { CoalescerStats } from '../../src/io/coalesce.js';
import { createReaderFactory } from '../../src/io/reader.js';
import { ReadStats } from '../../src/io/stats.js';
import { HttpStorage } from '../../src/storage/http.js';
import type { ByteSource } from '../../src/storage/types.js';
import { RangeServer } from '../support/range-server.js';
import { MemorySource, sameBytes } from '../support/memory-source.js';

const KiB = 1024;
const SIZE = 2 * 1024 * KiB;
const BLOCK = 64 * KiB;
const content = MemorySource.pattern(SIZE).data;

let dir: string;
let server: RangeServer;
const stats = new ReadStats();

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-io-'));
  await writeFile(path.join(dir, 'slide.bin'), content);
  server = await RangeServer.start({ root: dir });
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A fresh cache stack over the server's slide, with the server's counters zeroed. */
async function open(): Promise<{
  source: ByteSource;
  blockCache: BlockCache;
  coalescerStats: CoalescerStats;
  scope: ReadStats;
}> {
  const scope = stats.scope();
  const storage = new HttpStorage({ baseUrl: server.url, observer: scope });
  const inner = await storage.open('slide.bin');
  const blockCache = new BlockCache({ maxBytes: 4 * 1024 * KiB, blockSize: BLOCK });
  const coalescerStats = new CoalescerStats();
  const source = createReaderFactory({ blockCache, coalescerStats })(inner);
  server.resetCounters();
  return { source, blockCache, coalescerStats, scope };
}

/** The `Range` headers of the GETs the server received, in order. */
function ranges(): (string | undefined)[] {
  return server.requestsOf('GET').map((r) => r.range);
}

/** Waits (up to 5 s) for a condition the server reaches asynchronously, such as a socket closing. */
async function eventually(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

const expected = (offset: number, length: number) => content.subarray(offset, offset + length);

describe('io/ over a real HTTP range server', () => {
  beforeEach(() => server.resetCounters());

  it('10 concurrent identical metadata reads reach the server as one aligned range request', async () => {
    const { source, blockCache, scope } = await open();
    const reads = Array.from({ length: 10 }, () => source.read(70 * KiB, 100, { purpose: 'metadata' }));
    for (const bytes of await Promise.all(reads)) expect(bytes).toEqual(expected(70 * KiB, 100));
    expect(ranges()).toEqual([`bytes=${BLOCK}-${2 * BLOCK - 1}`]);
    expect(server.bytesSent).toBe(BLOCK);

    // Scattered reads in cached blocks cost nothing more.
    await source.read(BLOCK + 5, 8, { purpose: 'metadata' });
    await source.read(2 * BLOCK - 10, 10, { purpose: 'metadata' });
    expect(server.requestsOf('GET')).toHaveLength(1);
    expect(blockCache.stats()).toMatchObject({ requests: 1, blocks: 1 });
    expect(scope.snapshot().read).toMatchObject({ requests: 1, bytes: BLOCK, errors: 0 });
    expect(scope.forKey('slide.bin')?.reads).toBe(1);
  });

  it('a metadata read over three missing blocks is one request, clipped at the end of the object', async () => {
    const { source } = await open();
    const offset = SIZE - 2 * BLOCK - 100;
    const bytes = await source.read(offset, 2 * BLOCK + 100, { purpose: 'metadata' });
    expect(sameBytes(bytes, expected(offset, 2 * BLOCK + 100))).toBe(true);
    expect(ranges()).toEqual([`bytes=${SIZE - 3 * BLOCK}-${SIZE - 1}`]);
  });

  it('tile reads issued together with small gaps reach the server as one request', async () => {
    const { source, coalescerStats } = await open();
    const tiles: [number, number][] = [
      [300 * KiB, 20 * KiB],
      [322 * KiB, 18 * KiB],
      [345 * KiB, 25 * KiB],
      [372 * KiB, 10 * KiB],
    ];
    const answers = await Promise.all(tiles.map(([o, l]) => source.read(o, l, { purpose: 'data' })));
    answers.forEach((bytes, i) => expect(sameBytes(bytes, expected(...tiles[i]))).toBe(true));
    expect(ranges()).toEqual([`bytes=${300 * KiB}-${382 * KiB - 1}`]);
    expect(server.bytesSent).toBe(82 * KiB);
    expect(coalescerStats.snapshot()).toMatchObject({ reads: 4, requests: 1, bytesFetched: 82 * KiB });
  });

  it('tile reads far apart are separate requests, and a lone tile costs exactly its own bytes', async () => {
    const { source } = await open();
    await Promise.all([
      source.read(0, 1000, { purpose: 'data' }),
      source.read(SIZE - 1000, 1000, { purpose: 'data' }),
    ]);
    expect(ranges().sort()).toEqual([`bytes=0-999`, `bytes=${SIZE - 1000}-${SIZE - 1}`].sort());
    server.resetCounters();
    expect(await source.read(123_457, 4321, { purpose: 'data' })).toEqual(expected(123_457, 4321));
    expect(ranges()).toEqual([`bytes=123457-${123_457 + 4321 - 1}`]);
    expect(server.bytesSent).toBe(4321);
  });

  it('a caller that hangs up does not break the shared request; when all hang up the server sees it', async () => {
    const { source } = await open();
    server.failNext(1, 'delay:300');
    const a = new AbortController();
    const b = new AbortController();
    const first = source.read(500 * KiB, 100, { purpose: 'metadata', signal: a.signal });
    const second = source.read(500 * KiB + 200, 100, { purpose: 'metadata', signal: b.signal });
    await eventually(() => server.requests.length === 1);
    a.abort();
    await expect(first).rejects.toBeInstanceOf(Cancelled);
    expect(await second).toEqual(expected(500 * KiB + 200, 100));
    expect(server.clientAborted).toBe(0);
    expect(server.requestsOf('GET')).toHaveLength(1);

    server.resetCounters();
    server.failNext(1, 'delay:5000');
    const c = new AbortController();
    const d = new AbortController();
    const third = source.read(900 * KiB, 100, { purpose: 'data', signal: c.signal });
    const fourth = source.read(900 * KiB + 200, 100, { purpose: 'data', signal: d.signal });
    await eventually(() => server.requests.length === 1);
    c.abort();
    d.abort();
    await expect(third).rejects.toBeInstanceOf(Cancelled);
    await expect(fourth).rejects.toBeInstanceOf(Cancelled);
    await eventually(() => server.clientAborted === 1);
    expect(server.clientAborted).toBe(1);
    expect(server.requests).toHaveLength(1);
  });
});
