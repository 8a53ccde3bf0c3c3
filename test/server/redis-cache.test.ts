// Two real MedStream servers sharing one real redis-server (--redis-url) over one storage
// directory: a tile computed by A is a Redis hit on B (no tile-data read on B, byte-identical);
// a replaced slide never serves the old tile; Redis killed → tiles still 200 from storage and the
// circuit opens; Redis restarted → sharing resumes; Redis hung (SIGSTOP) → tiles in bounded time.
import { copyFile, mkdtemp, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { startRedis, type TestRedis } from '../support/redis-server.js';
import { metric, request, startTestServer, until } from '../support/server.js';

let dir: string;
let redis: TestRedis;
let a: RunningServer;
let b: RunningServer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-redis-servers-'));
  await copyFile(fixture('wsi/svs/CMU-1-Small-Region.svs'), path.join(dir, 'cmu.svs'));
  await copyFile(fixture('wsi/openslide/boxes.tiff'), path.join(dir, 'replaced.tiff'));
  redis = await startRedis();
  const flags = [
    '--redis-url',
    redis.url,
    '--redis-timeout',
    '100ms',
    '--redis-circuit-cooldown',
    '200ms',
    '--slide-revalidate',
    '0',
  ];
  [a, b] = await Promise.all([startTestServer(dir, flags), startTestServer(dir, flags)]);
});

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Distinct tiles of cmu.svs level 0 (10 x 13 of them), so each one starts uncached. */
let nextTile = 0;
const freshTile = (format = 'jpg') => {
  const n = nextTile++;
  return `/tiles/cmu.svs/0/${n % 10}/${Math.floor(n / 10) % 13}.${format}`;
};

describe('shared Redis cache between two replicas', () => {
  it('a tile computed by A is a Redis hit on B: no tile-data read, byte-identical', async () => {
    await request(b, '/slides/cmu.svs'); // B opens the slide (metadata only)
    for (const format of ['jpg', 'png']) {
      const tile = freshTile(format);
      const fromA = await request(a, tile);
      expect(fromA.status).toBe(200);
      expect(fromA.headers.get('x-cache')).toBe('miss');
      // A's SET is fire-and-forget: wait until Redis has it.
      await until(async () => (await metric(a, 'medstream_redis_sets_total')) >= (format === 'jpg' ? 1 : 2));

      const readsBefore = await metric(b, 'medstream_coalescer_reads_total');
      const renderedBefore = await metric(b, 'medstream_images_rendered_total');
      const hitsBefore = await metric(b, 'medstream_redis_hits_total');
      const fromB = await request(b, tile);
      expect(fromB.status).toBe(200);
      expect(fromB.headers.get('x-cache')).toBe('redis');
      expect(fromB.headers.get('x-tile-cache-hit')).toBe('true');
      expect(fromB.headers.get('server-timing')).toBe('cache;desc="redis"');
      expect(fromB.headers.get('content-type')).toBe(fromA.headers.get('content-type'));
      expect(fromB.headers.get('etag')).toBe(fromA.headers.get('etag'));
      expect(fromB.body.equals(fromA.body)).toBe(true);
      expect(await metric(b, 'medstream_coalescer_reads_total')).toBe(readsBefore);
      expect(await metric(b, 'medstream_images_rendered_total')).toBe(renderedBefore);
      expect(await metric(b, 'medstream_redis_hits_total')).toBe(hitsBefore + 1);

      // Now in B's own memory.
      expect((await request(b, tile)).headers.get('x-cache')).toBe('memory');
    }
    expect(await metric(b, 'medstream_redis_circuit_open')).toBe(0);
    expect(await metric(b, 'medstream_redis_connected')).toBe(1);
  });

  it('a replaced slide (new identity) never serves the old tile from Redis', async () => {
    const tile = '/tiles/replaced.tiff/0/0/0.png';
    const sets = await metric(a, 'medstream_redis_sets_total');
    const before = await request(a, tile);
    expect(before.status).toBe(200);
    await until(async () => (await metric(a, 'medstream_redis_sets_total')) > sets);
    const target = path.join(dir, 'replaced.tiff');
    await copyFile(fixture('wsi/svs/CMU-1-Small-Region.svs'), `${target}.tmp`);
    await rename(`${target}.tmp`, target);
    for (const server of [b, a]) {
      const after = await request(server, tile);
      expect(after.status).toBe(200);
      expect(after.headers.get('etag')).not.toBe(before.headers.get('etag'));
      expect(after.body.equals(before.body)).toBe(false);
    }
  });

  it('Redis killed: tiles still 200 from storage, the circuit opens; restarted: sharing resumes', async () => {
    await redis.kill();
    for (let i = 0; i < 8; i++) {
      const res = await request(a, freshTile());
      expect(res.status).toBe(200);
      expect(res.headers.get('x-cache')).toBe('miss');
    }
    expect(await metric(a, 'medstream_redis_circuit_open')).toBe(1);
    expect(await metric(a, 'medstream_redis_errors_total')).toBeGreaterThan(0);
    expect(await metric(a, 'medstream_redis_circuit_opens_total')).toBeGreaterThanOrEqual(1);

    await redis.restart();
    // Fresh tiles on A until one of them reaches Redis and B finds it there.
    await until(async () => {
      const tile = freshTile();
      expect((await request(a, tile)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 50));
      const fromB = await request(b, tile);
      expect(fromB.status).toBe(200);
      return fromB.headers.get('x-cache') === 'redis';
    }, 15_000);
    expect(await metric(a, 'medstream_redis_circuit_open')).toBe(0);
  });

  it('Redis hung (SIGSTOP): tiles are still served, each within a bounded time', async () => {
    redis.pause();
    try {
      const times: number[] = [];
      for (let i = 0; i < 8; i++) {
        const t0 = performance.now();
        const res = await request(a, freshTile('png'));
        times.push(performance.now() - t0);
        expect(res.status).toBe(200);
      }
      // 100 ms command timeout + the tile's own work; after 5 failures Redis is not even asked.
      expect(Math.max(...times)).toBeLessThan(2000);
      expect(await metric(a, 'medstream_redis_circuit_open')).toBe(1);
    } finally {
      redis.resume();
    }
  });
});
