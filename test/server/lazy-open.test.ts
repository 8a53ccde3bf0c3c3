// Lazy slide opening through the server on S3 (s3rver), counted at the S3 server: a slide whose
// first request is a level-0 tile is opened after its header and first directory only, so
// open + first tile costs exactly 1 HEAD and 3 GETs (header block, IFD 0's window, the tile)
// and at most 512 KiB plus the tile; the next tile is 1 GET of its size. The first request that
// needs the whole slide (metadata, Deep Zoom, IIIF info, another level) reads the rest once,
// and answers exactly what a slide opened whole answers. A slide replaced between its first
// tile and that walk is opened again, never mixed.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { mapTiff } from '../support/corrupt.js';
import { fixture } from '../support/fixtures.js';
import { startS3Server, type TestS3Server } from '../support/s3-server.js';
import { request, startTestServer } from '../support/server.js';

let s3: TestS3Server;
let server: RunningServer;

/** Each fixture twice: `lazy/` is asked a tile first, `whole/` its metadata first. */
const SLIDES: { name: string; file: string; walk: number }[] = [
  { name: 'pyramid.tif', file: 'wsi/generated/pyramid-jpeg.tif', walk: 1 },
  { name: 'cmu.svs', file: 'wsi/svs/CMU-1-Small-Region.svs', walk: 2 },
  { name: 'dapi.ndpi', file: 'wsi/ndpi/test3-DAPI-2.ndpi', walk: 1 },
];

beforeAll(async () => {
  s3 = await startS3Server();
  await s3.createBucket('slides');
  for (const { name, file } of SLIDES) {
    await s3.upload('slides', `lazy/${name}`, fixture(file));
    await s3.upload('slides', `whole/${name}`, fixture(file));
  }
  await s3.upload('slides', 'lazy/swap.tif', fixture('wsi/generated/pyramid-jpeg.tif'));
  await s3.upload('slides', 'lazy/busy.tif', fixture('wsi/generated/pyramid-jpeg.tif'));
  // A malformed pyramid: IFD 0 claims 1000x1000, smaller than IFD 1 (1110x1483).
  const bytes = new Uint8Array(readFileSync(fixture('wsi/generated/pyramid-jpeg.tif')));
  const view = new DataView(bytes.buffer);
  for (const entry of mapTiff(bytes).ifds[0].entries.filter((e) => e.tag === 256 || e.tag === 257)) {
    if (entry.type === 3) view.setUint16(entry.fieldPos, 1000, true);
    else view.setUint32(entry.fieldPos, 1000, true);
  }
  await s3.upload('slides', 'lazy/small-ifd0.tif', bytes);
  server = await startTestServer('s3://slides', s3.medstreamFlags());
}, 60_000);

afterAll(async () => {
  await server?.close();
  await s3?.close();
});

function since(start: number) {
  const log = s3.requestLog.slice(start);
  return {
    heads: log.filter((r) => r.method === 'HEAD').length,
    gets: s3.rangeReadsSince(start),
  };
}

describe.each(SLIDES)('$name on S3, a level-0 tile first', ({ name, walk }) => {
  it('open + first tile: 1 HEAD + 3 GETs, ≤ 512 KiB + the tile; next tile: 1 GET; the rest once, on demand', async () => {
    const whole = await request(server, `/slides/whole%2F${name}`);
    expect(whole.status).toBe(200);
    const meta = whole.json() as { levels: { tiles_x: number; tiles_y: number }[] };
    const { tiles_x: across, tiles_y: down } = meta.levels[0];
    const [x, y] = [across >> 1, down >> 1];
    // The tile to its right, else the one below (NDPI's level 0 is one column of tiles here).
    const [nx, ny] = x + 1 < across ? [x + 1, y] : [x, y + 1];
    expect(ny).toBeLessThan(down);

    let start = s3.requestLog.length;
    const first = await request(server, `/tiles/lazy%2F${name}/0/${x}/${y}.jpg`);
    expect(first.status).toBe(200);
    const open = since(start);
    expect(open.heads).toBe(1);
    expect(open.gets).toHaveLength(3);
    const tileBytes = open.gets[2];
    expect(open.gets[0] + open.gets[1]).toBeLessThanOrEqual(512 * 1024);
    // The same image the slide opened whole serves.
    const reference = await request(server, `/tiles/whole%2F${name}/0/${x}/${y}.jpg`);
    expect(first.body.equals(reference.body)).toBe(true);

    start = s3.requestLog.length;
    const next = await request(server, `/tiles/lazy%2F${name}/0/${nx}/${ny}.jpg`);
    expect(next.status).toBe(200);
    const nextReads = since(start);
    expect(nextReads.heads).toBe(0);
    expect(nextReads.gets).toHaveLength(1);
    expect(nextReads.gets[0]).toBeLessThanOrEqual(tileBytes * 2);

    // The metadata reads the rest of the chain (once), and equals the whole slide's.
    start = s3.requestLog.length;
    const lazyMeta = await request(server, `/slides/lazy%2F${name}`);
    expect(lazyMeta.status).toBe(200);
    expect(since(start)).toEqual({ heads: 0, gets: expect.any(Array) as unknown });
    expect(since(start).gets).toHaveLength(walk);
    const { slide_id: _a, ...lazyFields } = lazyMeta.json() as Record<string, unknown>;
    const { slide_id: _b, ...wholeFields } = meta as unknown as Record<string, unknown>;
    expect(lazyFields).toEqual(wholeFields);

    // Everything else is served from the whole slide now, without another read of the chain.
    start = s3.requestLog.length;
    expect((await request(server, `/slides/lazy%2F${name}/dzi`)).status).toBe(200);
    expect((await request(server, `/iiif/3/lazy%2F${name}/info.json`)).status).toBe(200);
    expect(since(start).gets).toHaveLength(0);
  });
});

describe('a slide replaced between its first tile and the rest of its structure', () => {
  it('is opened again: the metadata is the new object’s', async () => {
    const first = await request(server, '/tiles/lazy%2Fswap.tif/0/1/1.jpg');
    expect(first.status).toBe(200);
    await s3.upload('slides', 'lazy/swap.tif', fixture('wsi/svs/CMU-1-Small-Region.svs'));
    const meta = await request(server, '/slides/lazy%2Fswap.tif');
    expect(meta.status).toBe(200);
    const body = meta.json() as { format: string; levels: { width: number }[] };
    expect(body.format).toBe('aperio');
    const cmu = (await request(server, '/slides/whole%2Fcmu.svs')).json() as { levels: { width: number }[] };
    expect(body.levels.map((l) => l.width)).toEqual(cmu.levels.map((l) => l.width));
  });
});

describe('a first directory smaller than a later one (a malformed pyramid)', () => {
  it('level-0 tiles answered before the walk keep their own ETag: the whole slide’s level 0 is another image', async () => {
    const early = await request(server, '/tiles/lazy%2Fsmall-ifd0.tif/0/0/0.jpg');
    expect(early.status).toBe(200);
    const meta = (await request(server, '/slides/lazy%2Fsmall-ifd0.tif')).json() as { width: number };
    expect(meta.width).toBe(1110);
    const late = await request(server, '/tiles/lazy%2Fsmall-ifd0.tif/0/0/0.jpg');
    expect(late.status).toBe(200);
    expect(late.headers.get('etag')).not.toBe(early.headers.get('etag'));
    expect(late.body.equals(early.body)).toBe(false);
  });
});

describe('level-0 tiles and the metadata asked at the same time', () => {
  it('one open (1 HEAD, header and IFD 0 read once) and one walk of the rest, shared by all', async () => {
    const whole = (await request(server, '/slides/whole%2Fpyramid.tif')).json() as Record<string, unknown>;
    const start = s3.requestLog.length;
    const [meta, ...tiles] = await Promise.all([
      request(server, '/slides/lazy%2Fbusy.tif'),
      ...[0, 1, 2, 3, 4, 5].map((i) => request(server, `/tiles/lazy%2Fbusy.tif/0/${i}/1.jpg`)),
      request(server, '/slides/lazy%2Fbusy.tif'),
    ]);
    expect([meta, ...tiles].map((r) => r.status)).toEqual(Array(8).fill(200));
    const log = s3.requestLog.slice(start);
    expect(log.filter((r) => r.method === 'HEAD')).toHaveLength(1);
    // Header block, IFD 0's window, the one read of the rest, and the tiles (maybe coalesced).
    expect(s3.rangeReadsSince(start).length).toBeLessThanOrEqual(3 + 6);
    const { slide_id: _a, ...fields } = meta.json() as Record<string, unknown>;
    const { slide_id: _b, ...expected } = whole;
    expect(fields).toEqual(expected);
  });
});
