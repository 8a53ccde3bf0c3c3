// A flaky object store behind the tile server: a fault-injecting proxy in front of a real S3
// server (s3rver). Intermittent 500/503/SlowDown, resets, slow first bytes and slow bodies are
// retried within the deadline and the tile is served; a store that stays down answers a typed
// 503/502/504 within the deadline; a truncated body never becomes a cached tile; a client that
// hangs up cancels the storage reads its request started.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { fixture } from '../support/fixtures.js';
import { startS3Server, type TestS3Server } from '../support/s3-server.js';
import { request, startTestServer } from '../support/server.js';

const SLIDE = 'pyramid-jpeg.tif';
let s3: TestS3Server;
let proxy: FaultProxy;
let server: RunningServer;
let reference: Map<string, Buffer>;

const isTileRead = (r: { method: string; range?: string }) => r.method === 'GET' && r.range !== undefined;

beforeAll(async () => {
  s3 = await startS3Server();
  await s3.createBucket('slides');
  await s3.upload('slides', `lab/${SLIDE}`, fixture('wsi/generated/pyramid-jpeg.tif'));
  await s3.upload('slides', 'lab/CMU.svs', fixture('wsi/svs/CMU-1-Small-Region.svs'));
  proxy = await startFaultProxy(s3.endpoint);
  server = await startTestServer('s3://slides/lab', [
    ...s3.medstreamFlags(proxy.url),
    '--storage-deadline',
    '3s',
    '--storage-attempt-timeout',
    '700ms',
    '--slide-revalidate',
    '1h',
    '--log-level',
    'info',
  ]);
  // The tiles every test reads, fetched once without faults, as the expected bytes.
  reference = new Map();
  for (const tile of [
    '0/1/1',
    '0/2/1',
    '0/3/1',
    '0/4/1',
    '0/5/1',
    '0/6/1',
    '0/7/1',
    '1/1/1',
    '1/2/2',
    '1/3/3',
  ]) {
    const res = await request(server, `/tiles/${SLIDE}/${tile}.png`);
    expect(res.status).toBe(200);
    reference.set(tile, res.body);
  }
}, 180_000);

afterAll(async () => {
  await server?.close();
  await proxy?.close();
  await s3?.close();
});

beforeEach(() => proxy.reset());

/** A PNG of a tile that is not in the encoded-tile cache yet (PNG of each tile is asked once per test). */
async function freshTile(tile: string, query = '') {
  return request(server, `/tiles/${SLIDE}/${tile}.png${query}`);
}

describe('an intermittently failing store', () => {
  it.each([
    ['500', '0/1/1', [{ fault: '500' as const }, { fault: '500' as const }]],
    ['503', '0/2/1', [{ fault: '503' as const }, { fault: '503' as const }, { fault: '503' as const }]],
    ['SlowDown', '0/3/1', [{ fault: 'slowdown' as const }, { fault: 'slowdown' as const }]],
    ['connection reset', '0/4/1', [{ fault: 'reset' as const }, { fault: 'reset' as const }]],
    ['slow first byte', '0/5/1', [{ fault: 'delay' as const, ms: 1500 }]],
    ['slow body', '0/6/1', [{ fault: 'slow-body' as const, intervalMs: 400, chunkBytes: 64 }]],
    ['truncated body', '0/7/1', [{ fault: 'truncate' as const }]],
    ['truncated body without Content-Length', '1/1/1', [{ fault: 'truncate' as const, withoutLength: true }]],
  ])('%s: retried within the deadline, and the tile is right', async (_name, tile, faults) => {
    proxy.plan(faults, { match: isTileRead });
    // quality makes it a new image (not in the tile cache), so the storage read really happens.
    const res = await freshTile(tile, '?quality=91');
    expect(res.status, res.body.toString().slice(0, 200)).toBe(200);
    expect(proxy.pending).toBe(0);
    expect(proxy.log.filter(isTileRead).length).toBeGreaterThan(faults.length);
    // This answer was computed through the faults (not a cache hit), and it has the same pixels as
    // without faults: nothing truncated was decoded. PNG ignores quality and encodes
    // deterministically, so the bytes of the faulted PNG equal the reference's.
    expect(res.headers.get('x-cache')).toBe('miss');
    expect(res.body.equals(reference.get(tile)!)).toBe(true);
  });
});

describe('a store that stays down', () => {
  it.each([
    ['503', { fault: '503' as const }, 503, 'storage_error', 71],
    ['connection reset', { fault: 'reset' as const }, 502, 'connection_error', 72],
    ['never answering in time', { fault: 'delay' as const, ms: 10_000 }, 504, 'storage_timeout', 73],
  ])(
    '%s: a typed error within the deadline',
    async (_name, fault, status, code, quality) => {
      proxy.always(fault, { match: isTileRead });
      const started = Date.now();
      const res = await request(server, `/tiles/${SLIDE}/1/2/2.jpg?quality=${quality}`);
      const elapsed = Date.now() - started;
      proxy.always(null);
      expect(res.status).toBe(status);
      expect(res.json()).toMatchObject({ error: code, status });
      // The storage deadline is 3 s; 1.5 s more covers the answer's own path on a loaded machine.
      expect(elapsed).toBeLessThan(3000 + 1500);
      if (status === 503) expect(res.headers.get('retry-after')).toBe('1');
      // Nothing was cached from the failure: with the store back, the same request succeeds.
      const ok = await request(server, `/tiles/${SLIDE}/1/2/2.jpg?quality=${quality}`);
      expect(ok.status).toBe(200);
      expect(ok.headers.get('x-cache')).toBe('miss');
    },
    15_000,
  );

  it.each([
    ['with Content-Length', { fault: 'truncate' as const }, 50],
    ['without Content-Length', { fault: 'truncate' as const, withoutLength: true }, 51],
  ])(
    'a truncated tile read (%s) is never cached: every attempt truncated → a storage error, then the real tile',
    async (_name, fault, quality) => {
      proxy.always(fault, { match: isTileRead });
      const url = `/tiles/${SLIDE}/1/3/3.png?quality=${quality}`;
      const failed = await request(server, url);
      proxy.always(null);
      // Caught as a short read by storage (a transport fault), not left to the decoder to notice.
      expect(failed.status).toBe(502);
      expect(failed.json()).toMatchObject({ error: 'connection_error', status: 502 });
      expect(proxy.log.filter(isTileRead).every((r) => r.fault === 'truncate')).toBe(true);
      // The same URL with the store healthy: computed again from storage (no cache answered), and
      // the pixels are the reference's.
      const readsBefore = proxy.log.filter(isTileRead).length;
      const ok = await request(server, url);
      expect(ok.status).toBe(200);
      expect(ok.headers.get('x-cache')).toBe('miss');
      expect(proxy.log.filter(isTileRead).length).toBeGreaterThan(readsBefore);
      expect(proxy.log.filter(isTileRead).at(-1)!.fault).toBe('pass');
      expect(ok.body.equals(reference.get('1/3/3')!)).toBe(true);
    },
    15_000,
  );
});

describe('a client that hangs up', () => {
  it('cancels the storage reads its request started', async () => {
    // A region of 12 tiles of level 0 of CMU, each read held 2 s by the proxy: the client gives
    // up after 300 ms; the proxy must see those reads aborted, not completed.
    proxy.always({ fault: 'delay', ms: 2000 }, { match: isTileRead });
    const controller = new AbortController();
    const pending = fetch(
      `${server.url}/slides/CMU.svs/region?x=0&y=0&width=900&height=700&level=0&format=raw`,
      {
        signal: controller.signal,
      },
    ).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = proxy.log.filter(isTileRead).length;
    controller.abort();
    await pending;
    await new Promise((resolve) => setTimeout(resolve, 200));
    await proxy.idle();
    proxy.always(null);
    const reads = proxy.log.filter(isTileRead);
    expect(started).toBeGreaterThan(0);
    expect(reads.every((r) => r.clientAborted)).toBe(true);
    expect(reads.filter((r) => r.status !== undefined)).toEqual([]);
  }, 15_000);
});
