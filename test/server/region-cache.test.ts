// Small encoded regions are cached images (TileService.regionImage): a repeat of the same region
// is answered from the cache — by the cached-image fast path, before Fastify — with the same
// body and headers, a strong ETag and 304 on If-None-Match; a region of another slide version
// is never answered from the old one. Regions over 512×512 and `raw` are computed each time.
import { copyFile, mkdtemp, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { request, startTestServer } from '../support/server.js';

let dir: string;
let server: RunningServer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-region-cache-'));
  await copyFile(fixture('wsi/generated/pyramid-jpeg.tif'), path.join(dir, 'slide.tif'));
  server = await startTestServer(dir);
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

async function fastAnswers(): Promise<number> {
  const text = (await request(server, '/metrics')).body.toString();
  return Number(/^medstream_http_fast_path_responses_total (\d+)/m.exec(text)?.[1]);
}

const stable = (headers: Headers) =>
  Object.fromEntries(
    [...headers.entries()].filter(
      ([k]) => !['x-request-id', 'x-cache', 'x-tile-cache-hit', 'server-timing', 'date'].includes(k),
    ),
  );

describe('region caching', () => {
  it('a repeated 256×256 region: the same body and headers from the cache, via the fast path; 304 on its ETag', async () => {
    const url = '/slides/slide.tif/region?x=512&y=256&width=256&height=256&level=0&format=jpg&quality=80';
    const first = await request(server, url);
    expect(first.status).toBe(200);
    expect(first.headers.get('x-cache')).toBe('miss');
    const etag = first.headers.get('etag');
    expect(etag).toMatch(/^"[\w-]{32}"$/);
    expect(first.headers.get('x-region-level')).toBe('0');

    const before = await fastAnswers();
    const again = await request(server, url);
    expect(again.status).toBe(200);
    expect(again.headers.get('x-cache')).toBe('memory');
    expect(again.body.equals(first.body)).toBe(true);
    expect(stable(again.headers)).toEqual(stable(first.headers));
    expect(await fastAnswers()).toBe(before + 1);

    const notModified = await request(server, url, { headers: { 'if-none-match': etag! } });
    expect(notModified.status).toBe(304);

    // Another quality or format is another image.
    const other = await request(server, url.replace('quality=80', 'quality=60'));
    expect(other.headers.get('x-cache')).toBe('miss');
    expect(other.headers.get('etag')).not.toBe(etag);
    const png = await request(server, url.replace('format=jpg&quality=80', 'format=png'));
    expect(png.headers.get('content-type')).toBe('image/png');
    expect(png.headers.get('x-cache')).toBe('miss');
  });

  it('a replaced slide: the region is computed again from the new object', async () => {
    const url = '/slides/swap.tif/region?x=0&y=0&width=128&height=128&level=0&format=png';
    await copyFile(fixture('wsi/generated/pyramid-jpeg.tif'), path.join(dir, 'swap.tif'));
    const first = await request(server, url);
    expect(first.status).toBe(200);
    await copyFile(fixture('wsi/svs/CMU-1-Small-Region.svs'), path.join(dir, 'swap.tif.tmp'));
    await rename(path.join(dir, 'swap.tif.tmp'), path.join(dir, 'swap.tif'));
    // The next read of the slide notices the new object (its identity is checked on every read),
    // as for tiles: until then the fast path may answer what the cache holds (--slide-revalidate).
    await request(server, '/tiles/swap.tif/0/0/0.jpg');
    const after = await request(server, url);
    expect(after.status).toBe(200);
    expect(after.headers.get('x-cache')).toBe('miss');
    expect(after.headers.get('etag')).not.toBe(first.headers.get('etag'));
  });

  it('regions over 512×512 and raw regions are not cached', async () => {
    const big = '/slides/slide.tif/region?x=0&y=0&width=600&height=600&level=0&format=jpg';
    expect((await request(server, big)).headers.get('etag')).toBeNull();
    expect((await request(server, big)).headers.get('x-cache')).toBeNull();
    const raw = '/slides/slide.tif/region?x=0&y=0&width=64&height=64&level=0&format=raw';
    const res = await request(server, raw);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body.byteLength).toBe(64 * 64 * 3);
  });
});
