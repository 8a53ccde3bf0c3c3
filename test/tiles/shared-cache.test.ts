// The shared Redis image cache against a real redis-server: value encoding, TTL, the circuit
// breaker (Redis killed, restarted, hung by SIGSTOP) and the bound on a hung Redis' latency.
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CircuitBreaker,
  deadline,
  decodeValue,
  encodeValue,
  KEY_PREFIX,
  BLOCKS_KEY_PREFIX,
  RedisSharedCache,
  redisKeyOf,
  type CacheLogger,
} from '../../src/tiles/shared-cache.js';
import { BlockCache } from '../../src/io/block-cache.js';
import { MemorySource } from '../support/memory-source.js';
import { startRedis, type TestRedis } from '../support/redis-server.js';
import { until } from '../support/server.js';

let redis: TestRedis;

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await redis?.stop();
});

const value = (text: string, passthrough = false) => ({
  body: Buffer.from(text),
  contentType: 'image/jpeg',
  passthrough,
});

function recordingLogger(): CacheLogger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (_obj, msg) => lines.push(`info ${msg}`),
    warn: (_obj, msg) => lines.push(`warn ${msg}`),
    debug: () => {},
  };
}

describe('value encoding', () => {
  it('round-trips body, content type and the passthrough flag', () => {
    for (const v of [value('abc', true), value('', false), { ...value('x'), contentType: 'image/png' }]) {
      expect(decodeValue(encodeValue(v))).toEqual(v);
    }
  });

  it('rejects foreign or truncated values', () => {
    expect(decodeValue(Buffer.from([]))).toBeUndefined();
    expect(decodeValue(Buffer.from([9, 0, 0]))).toBeUndefined();
    expect(decodeValue(Buffer.from([1, 0, 10, 65]))).toBeUndefined();
  });

  it('keys are compact hashes under the versioned prefix', () => {
    const key = redisKeyOf('etag-1\0slide.svs\0tile\0' + 'x'.repeat(5000));
    expect(key.startsWith(KEY_PREFIX)).toBe(true);
    expect(key.length).toBe(KEY_PREFIX.length + 43);
    expect(redisKeyOf('a')).not.toBe(redisKeyOf('b'));
  });
});

describe('CircuitBreaker', () => {
  it('opens after N consecutive failures, probes once after the cooldown, closes on success', () => {
    let now = 0;
    const changes: boolean[] = [];
    const b = new CircuitBreaker(
      3,
      100,
      () => now,
      (open) => changes.push(open),
    );
    b.failure();
    b.failure();
    b.success();
    b.failure();
    b.failure();
    expect(b.open).toBe(false);
    b.failure();
    expect(b.open).toBe(true);
    expect(b.allow()).toBe(false);
    now = 100;
    expect(b.allow()).toBe(true); // the probe
    expect(b.allow()).toBe(false); // only one
    b.failure(); // probe failed: open again, no new log
    expect(b.allow()).toBe(false);
    now = 200;
    expect(b.allow()).toBe(true);
    b.success();
    expect(b.open).toBe(false);
    expect(b.allow()).toBe(true);
    expect(changes).toEqual([true, false]);
    expect(b.opens).toBe(1);
  });
});

describe('RedisSharedCache', () => {
  it('stores with a TTL and reads back; misses count', async () => {
    const cache = new RedisSharedCache({ url: redis.url, ttlMs: 60_000, timeoutMs: 200 });
    try {
      expect(await cache.ready(5000)).toBe(true);
      cache.set('k1', value('hello', true));
      await until(() => cache.stats().sets === 1);
      expect(await cache.get('k1')).toEqual(value('hello', true));
      expect(await cache.get('absent')).toBeUndefined();
      const direct = new Redis(redis.url);
      const ttl = await direct.pttl(redisKeyOf('k1'));
      await direct.quit();
      expect(ttl).toBeGreaterThan(50_000);
      expect(ttl).toBeLessThanOrEqual(60_000);
      const s = cache.stats();
      expect(s.hits).toBe(1);
      expect(s.misses).toBe(1);
      expect(s.getCount).toBe(2);
    } finally {
      await cache.close();
    }
  });

  it('Redis killed: misses without throwing, circuit opens, logs once; restarted: recovers', async () => {
    const logger = recordingLogger();
    const cache = new RedisSharedCache({
      url: redis.url,
      ttlMs: 60_000,
      timeoutMs: 100,
      cooldownMs: 200,
      failureThreshold: 3,
      logger,
    });
    try {
      expect(await cache.ready(5000)).toBe(true);
      cache.set('before', value('v'));
      await until(() => cache.stats().sets === 1);
      await redis.kill();
      for (let i = 0; i < 10; i++) expect(await cache.get('before')).toBeUndefined();
      expect(cache.stats().circuitOpen).toBe(true);
      expect(cache.stats().skipped).toBeGreaterThan(0);
      cache.set('during', value('v')); // never throws
      await redis.restart();
      await until(async () => {
        await cache.get('probe');
        return !cache.stats().circuitOpen;
      });
      cache.set('after', value('back'));
      await until(() => cache.stats().sets === 2);
      expect(await cache.get('after')).toEqual(value('back'));
      expect(logger.lines.filter((l) => l.startsWith('warn'))).toHaveLength(1);
      expect(logger.lines.filter((l) => l.startsWith('info'))).toHaveLength(1);
    } finally {
      await cache.close();
    }
  });

  it('a reply that arrived while this process was busy past the timeout is a hit, not a failure', async () => {
    const cache = new RedisSharedCache({ url: redis.url, ttlMs: 60_000, timeoutMs: 30 });
    try {
      expect(await cache.ready(5000)).toBe(true);
      cache.set('busy', value('in time'));
      await until(() => cache.stats().sets === 1);
      for (let i = 0; i < 3; i++) {
        const pending = cache.get('busy');
        // A saturated event loop: this process is blocked past the 30 ms timeout (150 ms), and
        // until Redis has answered. A synchronous PING from another client that returns shows
        // Redis has served the GET sent before it, whatever the machine's load.
        const end = performance.now() + 150;
        execFileSync('redis-cli', ['-p', String(redis.port), 'ping']);
        while (performance.now() < end);
        expect(await pending).toEqual(value('in time'));
      }
      expect(cache.stats()).toMatchObject({ errors: 0, hits: 3, circuitOpen: false });
    } finally {
      await cache.close();
    }
  });

  it('deadline: a command that never answers is given up after the timeout', async () => {
    const t0 = performance.now();
    await expect(deadline(new Promise(() => {}), 40)).rejects.toThrow(/timed out after 40 ms/);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(39);
    await expect(deadline(Promise.resolve(7), 40)).resolves.toBe(7);
    await expect(deadline(Promise.reject(new Error('refused')), 40)).rejects.toThrow('refused');
  });

  it('ready() resolves false, without throwing, when nothing listens', async () => {
    const cache = new RedisSharedCache({ url: 'redis://127.0.0.1:1/0', ttlMs: 60_000, timeoutMs: 50 });
    try {
      expect(await cache.ready(300)).toBe(false);
      expect(await cache.get('k')).toBeUndefined();
      expect(cache.stats().errors).toBe(1);
    } finally {
      await cache.close();
    }
  });

  it('Redis hung (SIGSTOP): each get returns within about the timeout, then the circuit skips it', async () => {
    const cache = new RedisSharedCache({
      url: redis.url,
      ttlMs: 60_000,
      timeoutMs: 50,
      cooldownMs: 60_000,
      failureThreshold: 3,
    });
    try {
      expect(await cache.ready(5000)).toBe(true);
      redis.pause();
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        expect(await cache.get('k')).toBeUndefined();
        times.push(performance.now() - t0);
      }
      // Each get came back while Redis was still stopped, so by its own timeout. The bound is
      // 20x the 50 ms timeout, room for a loaded machine; without the timeout it would be forever.
      expect(Math.max(...times)).toBeLessThan(1000);
      expect(cache.stats()).toMatchObject({ errors: 3, skipped: 0, circuitOpen: true });
      // Circuit open: the next gets are not even sent (counted as skipped, no new error).
      for (let i = 0; i < 3; i++) expect(await cache.get('k')).toBeUndefined();
      expect(cache.stats()).toMatchObject({ errors: 3, skipped: 3, circuitOpen: true });
    } finally {
      redis.resume();
      await cache.close();
    }
  });
});

describe('metadata blocks shared through Redis (two replicas = two BlockCaches, two clients)', () => {
  const BLOCK = 4096;
  async function replica(options: { maxBlocksPerObject?: number } = {}) {
    const shared = new RedisSharedCache({ url: redis.url, ttlMs: 60_000, timeoutMs: 200, ...options });
    expect(await shared.ready(5000)).toBe(true);
    return { shared, blocks: new BlockCache({ maxBytes: 1 << 20, blockSize: BLOCK, shared }) };
  }

  it('blocks A fetched are answered on B without a storage request, byte-identical', async () => {
    const source = MemorySource.pattern(10 * BLOCK + 100, { key: 'shared.bin' });
    const [a, b] = await Promise.all([replica(), replica()]);
    try {
      // Spans blocks 1..3, and the short tail block 10 separately.
      expect(await a.blocks.read(source, BLOCK + 5, 2 * BLOCK)).toEqual(
        source.data.slice(BLOCK + 5, 3 * BLOCK + 5),
      );
      await a.blocks.read(source, 10 * BLOCK + 1, 90);
      expect(source.calls).toHaveLength(2);
      await until(() => a.shared.stats().blockSets === 4);

      expect(await b.blocks.read(source, BLOCK + 5, 2 * BLOCK)).toEqual(
        source.data.slice(BLOCK + 5, 3 * BLOCK + 5),
      );
      expect(await b.blocks.read(source, 10 * BLOCK, 100)).toEqual(source.data.slice(10 * BLOCK));
      expect(source.calls).toHaveLength(2);
      expect(b.blocks.stats()).toMatchObject({ requests: 0, sharedHits: 4 });
      expect(b.shared.stats()).toMatchObject({ blockHits: 4, blockMisses: 0 });
      // Then from B's own memory.
      await b.blocks.read(source, BLOCK, 10);
      expect(b.shared.stats().blockHits).toBe(4);

      // A run with one block Redis lacks (4; A has read 5) goes to storage as one request,
      // and B offers the blocks back.
      await a.blocks.read(source, 5 * BLOCK, 10);
      await until(() => a.shared.stats().blockSets === 5);
      expect(await b.blocks.read(source, 4 * BLOCK, 2 * BLOCK)).toEqual(
        source.data.slice(4 * BLOCK, 6 * BLOCK),
      );
      expect(source.calls).toHaveLength(4);
      expect(source.calls[3]).toMatchObject({ offset: 4 * BLOCK, length: 2 * BLOCK });
      await until(() => b.shared.stats().blockSets === 2);
    } finally {
      await Promise.all([a.shared.close(), b.shared.close()]);
    }
  });

  it('keys carry the identity and block size: a replaced object or another block size misses', async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    const other = new BlockCache({ maxBytes: 1 << 20, blockSize: 2 * BLOCK, shared: b.shared });
    try {
      const v1 = MemorySource.pattern(4 * BLOCK, { key: 'replaced.bin', identity: 'v1' });
      await a.blocks.read(v1, 0, 100);
      await until(() => a.shared.stats().blockSets === 1);
      const v2 = MemorySource.pattern(4 * BLOCK, { key: 'replaced.bin', identity: 'v2', seed: 9 });
      expect(await b.blocks.read(v2, 0, 100)).toEqual(v2.data.slice(0, 100));
      expect(v2.calls).toHaveLength(1);
      await other.read(v1, 0, 100);
      expect(v1.calls).toHaveLength(2);
      expect(other.stats().sharedHits).toBe(0);
    } finally {
      await Promise.all([a.shared.close(), b.shared.close()]);
    }
  });

  it('bounds the blocks kept per object, sets a TTL, and ignores values of the wrong length', async () => {
    const { shared, blocks } = await replica({ maxBlocksPerObject: 3 });
    const direct = new Redis(redis.url);
    try {
      await direct.flushall();
      const source = MemorySource.pattern(8 * BLOCK, { key: 'bounded.bin' });
      await blocks.read(source, 0, 8 * BLOCK);
      await until(() => shared.stats().blockSets === 8);
      const [key] = await direct.keys(`${BLOCKS_KEY_PREFIX}*`);
      expect(await direct.hlen(key)).toBe(3);
      expect(await direct.pttl(key)).toBeGreaterThan(50_000);

      // A value cut short (another writer, a bug) is not trusted: storage answers.
      await direct.hset(key, '0', 'short');
      const fresh = new BlockCache({ maxBytes: 1 << 20, blockSize: BLOCK, shared });
      expect(await fresh.read(source, 0, 10)).toEqual(source.data.slice(0, 10));
      expect(source.calls).toHaveLength(2);
      expect(await fresh.read(source, BLOCK, 10)).toEqual(source.data.slice(BLOCK, BLOCK + 10));
      expect(source.calls).toHaveLength(2); // block 1 is intact in Redis
    } finally {
      await direct.quit();
      await shared.close();
    }
  });

  it('Redis killed: blocks come from storage, reads never fail', async () => {
    const { shared, blocks } = await replica();
    try {
      await redis.kill();
      const source = MemorySource.pattern(4 * BLOCK, { key: 'redis-down.bin' });
      for (let i = 0; i < 4; i++) {
        expect(await blocks.read(source, i * BLOCK, 10)).toEqual(
          source.data.slice(i * BLOCK, i * BLOCK + 10),
        );
      }
      expect(source.calls).toHaveLength(4);
      expect(shared.stats().errors).toBeGreaterThan(0);
    } finally {
      await redis.restart();
      await shared.close();
    }
  });
});
