// The native (WSIStreamer-compatible) routes on a real server over local fixtures: metadata,
// tiles (passthrough proven byte for byte), formats, HTTP caching, thumbnails, associated images,
// errors, replaced objects.
import { copyFile, mkdir, mkdtemp, readFile, rename } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { openSlide } from '../../src/formats/detect.js';
import { LocalStorage } from '../../src/storage/local.js';
import { fixture, FIXTURES } from '../support/fixtures.js';
import { compareRgb } from '../support/image-compare.js';
import { metric, request, startTestServer } from '../support/server.js';

interface ManifestSlide {
  slide: string;
  level_dimensions: [number, number][];
  associated_images: string[];
  properties: Record<string, string>;
}

const manifest = JSON.parse(await readFile(path.join(FIXTURES, 'reference/manifest.json'), 'utf8')) as (
  ManifestSlide | { png: string }
)[];
const CMU = manifest.find(
  (m): m is ManifestSlide => 'level_dimensions' in m && m.slide === 'CMU-1-Small-Region.svs',
)!;

let dir: string;
let server: RunningServer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-native-'));
  await mkdir(path.join(dir, 'cases/42'), { recursive: true });
  await copyFile(
    fixture('wsi/svs/CMU-1-Small-Region.svs'),
    path.join(dir, 'cases/42/CMU-1-Small-Region.svs'),
  );
  for (const f of [
    'openslide/boxes.tiff',
    'openslide/unopenable.tiff',
    'openslide/unreadable.svs',
    'svs/tcga-cr-7395-01a-01-ts1.svs',
  ]) {
    await copyFile(fixture(`wsi/${f}`), path.join(dir, path.basename(f)));
  }
  server = await startTestServer(dir, ['--slide-revalidate', '0']);
});

afterAll(async () => {
  await server?.close();
});

const CMU_ID = encodeURIComponent('cases/42/CMU-1-Small-Region.svs');

describe('GET /slides/{id}', () => {
  it('returns WSIStreamer fields plus ours, matching OpenSlide', async () => {
    const res = await request(server, `/slides/${CMU_ID}`);
    expect(res.status).toBe(200);
    const body = res.json() as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON under test
    expect(body.slide_id).toBe('cases/42/CMU-1-Small-Region.svs');
    expect(body.format).toBe('aperio');
    expect([body.width, body.height]).toEqual(CMU.level_dimensions[0]);
    expect(body.level_count).toBe(body.levels.length);
    expect(body.levels[0]).toEqual({
      level: 0,
      width: 2220,
      height: 2967,
      tile_width: 240,
      tile_height: 240,
      tiles_x: 10,
      tiles_y: 13,
      downsample: 1,
      native: true,
    });
    // Single-level slide: synthesised levels down to one tile.
    expect(body.levels.length).toBeGreaterThan(1);
    expect(body.levels.at(-1).tiles_x).toBe(1);
    expect(body.mpp_x).toBeCloseTo(Number(CMU.properties['openslide.mpp-x']), 6);
    expect(body.objective_power).toBe(20);
    expect(body.associated_images.map((a: { name: string }) => a.name).sort()).toEqual(
      [...CMU.associated_images].sort(),
    );
    expect(body.properties['aperio.AppMag']).toBe('20');
  });

  it.each([
    ['missing.svs', 404, 'not_found'],
    ['unopenable.tiff', 415, 'unsupported_format'],
    [encodeURIComponent('../etc/passwd'), 400, 'invalid_id'],
    ['%2e%2e%2fsecret', 400, 'invalid_id'],
  ])('%s → %i %s', async (id, status, error) => {
    const res = await request(server, `/slides/${id}`);
    expect(res.status).toBe(status);
    expect(res.json()).toMatchObject({ error, status });
  });
});

describe('GET /tiles/{id}/{level}/{x}/{y}.jpg', () => {
  it('passes a stored JPEG tile through: the stored entropy-coded bytes are in the body, with APP14 for RGB', async () => {
    const source = await (await LocalStorage.create(dir)).open('cases/42/CMU-1-Small-Region.svs');
    const slide = await openSlide(source);
    const stored = (await slide.levels[0].grid!.readTile(3, 4))!;
    const res = await request(server, `/tiles/${CMU_ID}/0/3/4.jpg`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    // Everything after the stored tile's SOI is in the body unchanged (tables and APP14 are spliced in front).
    expect(
      res.body.subarray(res.body.length - (stored.length - 2)).equals(Buffer.from(stored.subarray(2))),
    ).toBe(true);
    expect(res.body.includes(Buffer.from('Adobe'))).toBe(true);
    const meta = await sharp(res.body).metadata();
    expect([meta.width, meta.height]).toEqual([240, 240]);
  });

  it('decodes to the OpenSlide reference pixels (true colours for RGB-colourspace JPEG)', async () => {
    const res = await request(server, `/tiles/${CMU_ID}/0/0/0.jpg`);
    const rgb = (buffer: Buffer) => ({ data: new Uint8Array(buffer), width: 240, height: 240 });
    const ref = await sharp(path.join(FIXTURES, 'reference/CMU-1-Small-Region.svs.L0.0_0_256x256.png'), {
      ignoreIcc: true,
    })
      .flatten({ background: '#ffffff' })
      .extract({ left: 0, top: 0, width: 240, height: 240 })
      .removeAlpha()
      .raw()
      .toBuffer();
    const ours = await sharp(res.body).removeAlpha().raw().toBuffer();
    const diff = compareRgb(rgb(ours), rgb(ref));
    expect(Math.max(...diff.mad)).toBeLessThanOrEqual(2);
    expect(diff.p99).toBeLessThanOrEqual(16);
  });

  it.each(['png', 'webp'])('re-encodes to %s', async (format) => {
    const res = await request(server, `/tiles/${CMU_ID}/0/1/1.${format}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(`image/${format}`);
    const meta = await sharp(res.body).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual([format, 240, 240]);
  });

  it('re-encodes at an explicit quality, caches it, and answers 304 and HEAD', async () => {
    const url = `/tiles/${CMU_ID}/0/2/2.jpg?quality=40`;
    const first = await request(server, url);
    expect(first.status).toBe(200);
    expect(first.headers.get('x-tile-cache-hit')).toBe('false');
    expect(first.body.includes(Buffer.from('Adobe'))).toBe(false); // decoded and re-encoded by libvips
    const second = await request(server, url);
    expect(second.headers.get('x-tile-cache-hit')).toBe('true');
    expect(second.body.equals(first.body)).toBe(true);
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    expect(first.headers.get('cache-control')).toMatch(/max-age=\d+/);
    expect((await request(server, url, { headers: { 'If-None-Match': etag } })).status).toBe(304);
    const head = await request(server, url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('etag')).toBe(etag);
    expect(head.body.length).toBe(0);
  });

  it('says where the time went in Server-Timing', async () => {
    const phases = (header: string | null) =>
      Object.fromEntries((header ?? '').split(', ').map((p) => [p.split(';')[0], p]));
    const decoded = await request(server, `/tiles/${CMU_ID}/0/3/3.png`);
    expect(Object.keys(phases(decoded.headers.get('server-timing'))).sort()).toEqual([
      'decode',
      'encode',
      'storage',
    ]);
    expect(decoded.headers.get('server-timing')).toMatch(/^(\w+;dur=\d+\.\d(, )?)+$/);
    // A stored tile passed through is not re-encoded; it is decoded once to check it is whole.
    const passthrough = await request(server, `/tiles/${CMU_ID}/0/8/11.jpg`);
    expect(passthrough.headers.get('x-cache')).toBe('miss');
    expect(Object.keys(phases(passthrough.headers.get('server-timing'))).sort()).toEqual([
      'decode',
      'storage',
    ]);
    const hit = await request(server, `/tiles/${CMU_ID}/0/3/3.png`);
    expect(hit.headers.get('server-timing')).toBe('cache;desc="hit"');
  });

  it('serves tiles of synthesised levels and JPEG 2000 slides', async () => {
    const meta = (await request(server, `/slides/${CMU_ID}`)).json() as { levels: { tile_width: number }[] };
    const last = meta.levels.length - 1;
    const res = await request(server, `/tiles/${CMU_ID}/${last}/0/0.jpg`);
    expect(res.status).toBe(200);
    expect((await sharp(res.body).metadata()).width).toBe(meta.levels[last].tile_width);
    const jp2k = await request(server, '/tiles/tcga-cr-7395-01a-01-ts1.svs/0/0/0.png');
    expect(jp2k.status).toBe(200);
    expect((await sharp(jp2k.body).metadata()).format).toBe('png');
  });

  it('shares one computation among concurrent identical requests', async () => {
    const before = await metric(server, 'medstream_images_joined_total');
    const url = `/tiles/${CMU_ID}/0/5/5.webp?quality=33`;
    const bodies = await Promise.all(Array.from({ length: 8 }, () => request(server, url)));
    expect(new Set(bodies.map((b) => b.body.toString('base64'))).size).toBe(1);
    expect((await metric(server, 'medstream_images_joined_total')) - before).toBeGreaterThan(0);
  });

  it.each([
    [`/tiles/${CMU_ID}/99/0/0.jpg`, 400, 'invalid_level'],
    [`/tiles/${CMU_ID}/-1/0/0.jpg`, 400, 'invalid_level'],
    [`/tiles/${CMU_ID}/0/10/0.jpg`, 400, 'tile_out_of_bounds'],
    [`/tiles/${CMU_ID}/0/0/13.jpg`, 400, 'tile_out_of_bounds'],
    [`/tiles/${CMU_ID}/0/0/99999999999.jpg`, 400, 'tile_out_of_bounds'],
    [`/tiles/${CMU_ID}/0/0/0.jpg?quality=0`, 400, 'invalid_quality'],
    [`/tiles/${CMU_ID}/0/0/0.jpg?quality=101`, 400, 'invalid_quality'],
    [`/tiles/${CMU_ID}/0/0/0.gif`, 400, 'invalid_format'],
    ['/tiles/missing.svs/0/0/0.jpg', 404, 'not_found'],
    ['/tiles/unopenable.tiff/0/0/0.jpg', 415, 'unsupported_format'],
  ])('%s → %i %s', async (url, status, error) => {
    const res = await request(server, url);
    expect(res.status).toBe(status);
    expect(res.json()).toMatchObject({ error, status, message: expect.any(String) });
  });

  it('a corrupt tile gives a clean JSON error, and the server keeps serving', async () => {
    const res = await request(server, '/tiles/unreadable.svs/0/0/0.png');
    expect([422, 500]).toContain(res.status);
    expect((res.json() as { error: string }).error).toMatch(/corrupt_file|decode_error/);
    expect((await request(server, `/tiles/${CMU_ID}/0/0/0.jpg`)).status).toBe(200);
  });
});

describe('thumbnails and associated images', () => {
  it('fits the thumbnail in max_size, keeping the aspect ratio', async () => {
    const res = await request(server, `/slides/${CMU_ID}/thumbnail?max_size=300`);
    expect(res.status).toBe(200);
    const meta = await sharp(res.body).metadata();
    expect(Math.max(meta.width!, meta.height!)).toBe(300);
    expect(meta.width! / meta.height!).toBeCloseTo(2220 / 2967, 2);
    expect(res.headers.get('x-thumbnail-clamped-size')).toBeNull();
  });

  it('clamps max_size to 64..2048 and says so', async () => {
    const res = await request(server, `/slides/${CMU_ID}/thumbnail?max_size=10`);
    expect(res.headers.get('x-thumbnail-requested-size')).toBe('10');
    expect(res.headers.get('x-thumbnail-clamped-size')).toBe('64');
    const meta = await sharp(res.body).metadata();
    expect(Math.max(meta.width!, meta.height!)).toBe(64);
  });

  it.each(['label', 'macro', 'thumbnail'])('serves the %s image', async (name) => {
    const res = await request(server, `/slides/${CMU_ID}/associated/${name}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect((await sharp(res.body).metadata()).width).toBeGreaterThan(0);
  });

  it('404s an associated image the slide does not have', async () => {
    const res = await request(server, '/slides/boxes.tiff/associated/label');
    expect(res.status).toBe(404);
    expect(res.json()).toMatchObject({ error: 'not_found' });
  });
});

describe('replaced objects', () => {
  it('never serves a replaced slide from cache', async () => {
    const target = path.join(dir, 'replaced.tiff');
    await copyFile(fixture('wsi/openslide/boxes.tiff'), target);
    const before = await request(server, '/slides/replaced.tiff');
    expect((before.json() as { format: string }).format).toBe('generic-tiff');
    const tileBefore = await request(server, '/tiles/replaced.tiff/0/0/0.png');

    // Replace it (atomically, as an upload would) with a different slide.
    await copyFile(fixture('wsi/svs/CMU-1-Small-Region.svs'), `${target}.tmp`);
    await rename(`${target}.tmp`, target);
    const after = await request(server, '/slides/replaced.tiff');
    expect((after.json() as { format: string }).format).toBe('aperio');
    const tileAfter = await request(server, '/tiles/replaced.tiff/0/0/0.png');
    expect(tileAfter.headers.get('etag')).not.toBe(tileBefore.headers.get('etag'));
    expect(tileAfter.body.equals(tileBefore.body)).toBe(false);
  });
});
