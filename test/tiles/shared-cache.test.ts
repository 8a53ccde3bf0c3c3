// The shared Redis image cache against a real redis-server: value encoding, TTL, the circuit
// breaker (Redis killed, restarted, hung by SIGSTOP) and the bound on a hung Redis' latency.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CircuitBreaker,
  decodeValue,
  encodeValue,
  KEY_PREFIX,
  RedisImageCache,
  redisKeyOf,
  type CacheLogger,
} from '../../src/tiles/shared-cache.js';
import { startRedis, type TestRedis } from '../support/redis-server.js';

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

async function until(condition: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
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

describe('RedisImageCache', () => {
  it('stores with a TTL and reads back; misses count', async () => {
    const cache = new RedisImageCache({ url: redis.url, ttlMs: 60_000, timeoutMs: 200 });
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
    const cache = new RedisImageCache({
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

  it('ready() resolves false, without throwing, when nothing listens', async () => {
    const cache = new RedisImageCache({ url: 'redis://127.0.0.1:1/0', ttlMs: 60_000, timeoutMs: 50 });
    try {
      expect(await cache.ready(300)).toBe(false);
      expect(await cache.get('k')).toBeUndefined();
      expect(cache.stats().errors).toBe(1);
    } finally {
      await cache.close();
    }
  });

  it('Redis hung (SIGSTOP): each get returns within about the timeout, then the circuit skips it', async () => {
    const cache = new RedisImageCache({
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
      for (let i = 0; i < 6; i++) {
        const t0 = performance.now();
        expect(await cache.get('k')).toBeUndefined();
        times.push(performance.now() - t0);
      }
      expect(Math.max(...times.slice(0, 3))).toBeLessThan(500);
      expect(Math.max(...times.slice(3))).toBeLessThan(5); // circuit open: not even sent
      expect(cache.stats().circuitOpen).toBe(true);
    } finally {
      redis.resume();
      await cache.close();
    }
  });
});
