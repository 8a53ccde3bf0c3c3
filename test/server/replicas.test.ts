// Two MedStream processes (`medstream serve` children, as replicas run) sharing one real
// redis-server and one S3 server (s3rver): what replica A computed or parsed, replica B serves
// without reading the slide again. B's storage reads are counted twice, by B (`/metrics`) and by
// the S3 server (range GETs in its request log, taken while only B is asked anything).
import { readdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture } from '../support/fixtures.js';
import { startRedis, type TestRedis } from '../support/redis-server.js';
import { startS3Server, type TestS3Server } from '../support/s3-server.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';
import { metric, request, until } from '../support/server.js';

const BUCKET = 'slides';
const DICOM_DIR = fixture('wsi/dicom-wsi/cmu-1-small-region');
let s3: TestS3Server;
let redis: TestRedis;
let a: ServerProcess;
let b: ServerProcess;

beforeAll(async () => {
  [s3, redis] = await Promise.all([startS3Server(), startRedis()]);
  await s3.createBucket(BUCKET);
  await s3.upload(BUCKET, 'cmu.svs', fixture('wsi/svs/CMU-1-Small-Region.svs'));
  await s3.upload(BUCKET, 'boxes.tiff', fixture('wsi/openslide/boxes.tiff'));
  await s3.upload(BUCKET, 'replaced.tiff', fixture('wsi/openslide/boxes.tiff'));
  for (const name of await readdir(DICOM_DIR)) {
    await s3.upload(BUCKET, `dicom/${name}`, `${DICOM_DIR}/${name}`);
  }
  const flags = [...s3.medstreamFlags(), '--redis-url', redis.url, '--slide-revalidate', '0'];
  [a, b] = await Promise.all([
    startServerProcess(`s3://${BUCKET}`, flags),
    startServerProcess(`s3://${BUCKET}`, flags),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([redis?.stop(), s3?.close()]);
});

const READS = 'medstream_storage_requests_total{kind="read"}';

/** What `fn` cost B in storage: range GETs seen by the S3 server and B's own read counter. */
async function storageCostOnB(fn: () => Promise<void>): Promise<{ rangeReads: number[]; reads: number }> {
  const from = s3.requestLog.length;
  const before = await metric(b, READS);
  await fn();
  return { rangeReads: s3.rangeReadsSince(from), reads: (await metric(b, READS)) - before };
}

/** Reads `names` from `server` now; `.since()` reads them again and returns each one's increase. */
async function counters(server: ServerProcess, names: string[]) {
  const read = async () => Promise.all(names.map((name) => metric(server, name)));
  const before = await read();
  return {
    async since(): Promise<Record<string, number>> {
      const after = await read();
      return Object.fromEntries(names.map((name, i) => [name, after[i] - before[i]]));
    },
  };
}

/** Waits until every Redis write `server` sent has been answered (they are fire and forget). */
async function settled(server: ServerProcess): Promise<void> {
  await until(async () => (await metric(server, 'medstream_redis_writes_in_flight')) === 0);
}

describe('two replica processes, one Redis, one S3 bucket', () => {
  // Counters are compared before and after each test's own requests, so each test stands alone
  // (vitest -t) as well as in file order.
  it('a tile A computed is a Redis hit on B, which never opened the slide: zero range reads on B', async () => {
    const onA = await counters(a, ['medstream_redis_sets_total']);
    const onB = await counters(b, [
      'medstream_slide_opens_total',
      'medstream_block_cache_shared_hits_total',
      'medstream_block_cache_requests_total',
    ]);
    const fromA = await request(a, '/tiles/cmu.svs/0/3/4.png');
    expect(fromA.status).toBe(200);
    expect(fromA.headers.get('x-cache')).toBe('miss');
    await settled(a);
    expect(await onA.since()).toEqual({ medstream_redis_sets_total: 1 });

    let fromB: Awaited<ReturnType<typeof request>> | undefined;
    const cost = await storageCostOnB(async () => {
      fromB = await request(b, '/tiles/cmu.svs/0/3/4.png');
    });
    expect(fromB!.status).toBe(200);
    expect(fromB!.headers.get('x-cache')).toBe('redis');
    expect(fromB!.body.equals(fromA.body)).toBe(true);
    expect(fromB!.headers.get('etag')).toBe(fromA.headers.get('etag'));
    expect(cost).toEqual({ rangeReads: [], reads: 0 });
    // B parsed the slide from blocks A had read.
    const onBDelta = await onB.since();
    expect(onBDelta.medstream_slide_opens_total).toBe(1);
    expect(onBDelta.medstream_block_cache_shared_hits_total).toBeGreaterThan(0);
    expect(onBDelta.medstream_block_cache_requests_total).toBe(0);
  });

  it('B opens a slide only A has parsed without a range read, with identical metadata', async () => {
    for (const id of ['boxes.tiff', encodeURIComponent('dicom/')]) {
      const fromA = await request(a, `/slides/${id}`);
      expect(fromA.status).toBe(200);
      await settled(a);
      let fromB: Awaited<ReturnType<typeof request>> | undefined;
      const cost = await storageCostOnB(async () => {
        fromB = await request(b, `/slides/${id}`);
      });
      expect(fromB!.status).toBe(200);
      expect(fromB!.json()).toEqual(fromA.json());
      expect(cost, id).toEqual({ rangeReads: [], reads: 0 });
    }
  });

  it('tile offsets A read are shared: B reads only the tile bytes for a tile A served in another format', async () => {
    // The tile's offset/length entries are read lazily (tile-offset blocks) by A's first tile.
    const fromA = await request(a, '/tiles/boxes.tiff/0/1/1.jpg');
    expect(fromA.status).toBe(200);
    await settled(a);
    const onB = await counters(b, ['medstream_block_cache_requests_total']);
    let fromB: Awaited<ReturnType<typeof request>> | undefined;
    const cost = await storageCostOnB(async () => {
      fromB = await request(b, '/tiles/boxes.tiff/0/1/1.png');
    });
    expect(fromB!.status).toBe(200);
    expect(fromB!.headers.get('x-cache')).toBe('miss');
    // One range read: the tile's stored bytes, no metadata.
    expect(cost.reads).toBe(1);
    expect(cost.rangeReads).toHaveLength(1);
    expect(await onB.since()).toEqual({ medstream_block_cache_requests_total: 0 });
  });

  it('replacing the slide object invalidates it on both replicas', async () => {
    const before = await request(a, '/tiles/replaced.tiff/0/0/0.png');
    expect(before.status).toBe(200);
    await settled(a);
    expect((await request(b, '/tiles/replaced.tiff/0/0/0.png')).headers.get('x-cache')).toBe('redis');

    await s3.upload(BUCKET, 'replaced.tiff', fixture('wsi/svs/CMU-1-Small-Region.svs'));
    for (const server of [b, a]) {
      const meta = await request(server, '/slides/replaced.tiff');
      expect((meta.json() as { format: string }).format).toBe('aperio');
      const after = await request(server, '/tiles/replaced.tiff/0/0/0.png');
      expect(after.status).toBe(200);
      expect(after.headers.get('x-cache')).not.toBe('memory');
      expect(after.headers.get('etag')).not.toBe(before.headers.get('etag'));
      expect(after.body.equals(before.body)).toBe(false);
    }
  });
});
