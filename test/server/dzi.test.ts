// The Deep Zoom routes on a real server over local fixtures: the descriptor, tile sizes at every
// level of every slide (checked against DeepZoomGenerator's arithmetic, computed here without
// the route's DeepZoomPyramid), pixels against region reads, errors, and passthrough of stored
// JPEG tiles with HTTP caching.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { compareRgb, type RgbImage } from '../support/image-compare.js';
import { request, startTestServer } from '../support/server.js';

/** Each slide with its level-0 size from the fixtures README (not from the server). */
const SLIDES = [
  { file: 'svs/CMU-1-Small-Region.svs', width: 2220, height: 2967 },
  { file: 'svs/tcga-cr-7395-01a-01-ts1.svs', width: 4443, height: 3567 }, // JPEG 2000
  { file: 'generated/pyramid-jpeg.tif', width: 2220, height: 2967 },
  { file: 'cog/cog.tif', width: 2658, height: 2667 },
  { file: 'openslide/boxes.tiff', width: 300, height: 250 },
  { file: 'openslide/small.svs', width: 16, height: 16 },
].map((s) => ({ ...s, id: path.basename(s.file) }));

const CMU = 'CMU-1-Small-Region.svs';
const PYRAMID = 'pyramid-jpeg.tif';

let dir: string;
let server: RunningServer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-dzi-'));
  for (const s of SLIDES) await copyFile(fixture(`wsi/${s.file}`), path.join(dir, s.id));
  server = await startTestServer(dir, ['--slide-revalidate', '0']);
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// --- DeepZoomGenerator's arithmetic (openslide-python deepzoom.py), written out independently ---

/** Level dimensions, coarsest (1x1) first: halve with ceil until both sides are 1. */
function dzLevels(width: number, height: number): [number, number][] {
  const dims: [number, number][] = [[width, height]];
  let [w, h] = [width, height];
  while (w > 1 || h > 1) {
    w = Math.max(1, Math.ceil(w / 2));
    h = Math.max(1, Math.ceil(h / 2));
    dims.push([w, h]);
  }
  return dims.reverse();
}

/** One axis of a tile: its length in level pixels, overlap included on sides with a neighbour. */
function dzTileLength(levelLength: number, tileSize: number, overlap: number, t: number): number {
  const count = Math.ceil(levelLength / tileSize);
  const before = t > 0 ? overlap : 0;
  const after = t < count - 1 ? overlap : 0;
  const start = tileSize * t - before;
  const end = Math.min(levelLength, tileSize * t + Math.min(tileSize, levelLength - tileSize * t) + after);
  return end - start;
}

const LAYOUTS = [
  { tileSize: 254, overlap: 1, query: '' },
  { tileSize: 256, overlap: 0, query: '?tile_size=256&overlap=0' },
];

function tileUrl(id: string, level: number, col: number, row: number, query = '', ext = 'jpg'): string {
  return `/slides/${encodeURIComponent(id)}/dzi_files/${level}/${col}_${row}.${ext}${query}`;
}

async function rgbOf(body: Buffer): Promise<RgbImage> {
  const { data, info } = await sharp(body).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

function mean(diff: { mad: [number, number, number] }): number {
  return (diff.mad[0] + diff.mad[1] + diff.mad[2]) / 3;
}

describe('GET /slides/{id}/dzi', () => {
  it.each(SLIDES.map((s) => [s.id, s] as const))(
    '%s: DZI XML with the default 254/1 jpg layout and the slide size',
    async (_id, slide) => {
      const res = await request(server, `/slides/${encodeURIComponent(slide.id)}/dzi`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/xml/);
      const xml = res.body.toString('utf8');
      expect(xml).toMatch(/^<\?xml version="1\.0" encoding="UTF-8"\?>/);
      expect(xml).toMatch(/<Image [^>]*xmlns="http:\/\/schemas\.microsoft\.com\/deepzoom\/2008"/);
      expect(xml).toMatch(/<Image [^>]*Format="jpg"/);
      expect(xml).toMatch(/<Image [^>]*Overlap="1"/);
      expect(xml).toMatch(/<Image [^>]*TileSize="254"/);
      expect(xml).toMatch(new RegExp(`<Size Width="${slide.width}" Height="${slide.height}"\\s*/>`));
      expect(xml.trim()).toMatch(/<\/Image>$/);
    },
  );

  it('reflects tile_size, overlap and format', async () => {
    const res = await request(server, `/slides/${CMU}/dzi?tile_size=256&overlap=0&format=png`);
    expect(res.status).toBe(200);
    const xml = res.body.toString('utf8');
    expect(xml).toMatch(/Format="png"/);
    expect(xml).toMatch(/Overlap="0"/);
    expect(xml).toMatch(/TileSize="256"/);
    expect(xml).toMatch(/<Size Width="2220" Height="2967"/);
    const webp = await request(server, `/slides/${CMU}/dzi?tile_size=510&overlap=2&format=webp`);
    expect(webp.body.toString('utf8')).toMatch(/Format="webp" Overlap="2" TileSize="510"/);
  });

  it.each([
    ['tile_size=0', 'bad_request'],
    ['tile_size=15', 'bad_request'],
    ['tile_size=4097', 'bad_request'],
    ['tile_size=abc', 'bad_request'],
    ['tile_size=-1', 'bad_request'],
    ['tile_size=254.5', 'bad_request'],
    ['overlap=-1', 'bad_request'],
    ['overlap=65', 'bad_request'],
    ['overlap=x', 'bad_request'],
    ['tile_size=16&overlap=8', 'bad_request'],
    ['format=gif', 'invalid_format'],
    ['format=tiff', 'invalid_format'],
    ['quality=0', 'invalid_quality'],
  ])('?%s → 400 %s', async (query, error) => {
    const res = await request(server, `/slides/${CMU}/dzi?${query}`);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.json()).toEqual({ error, message: expect.any(String), status: 400 });
  });

  it('404s an unknown slide, for the descriptor and for its tiles', async () => {
    for (const url of ['/slides/missing.svs/dzi', '/slides/missing.svs/dzi_files/0/0_0.jpg']) {
      const res = await request(server, url);
      expect(res.status).toBe(404);
      expect(res.json()).toMatchObject({ error: 'not_found', status: 404, message: expect.any(String) });
    }
  });
});

describe('GET /slides/{id}/dzi_files/{L}/{c}_{r}.jpg', () => {
  it('the expectations follow DeepZoomGenerator (self-check of the local arithmetic)', () => {
    // openslide-python, DeepZoomGenerator(CMU-1-Small-Region): 13 levels, level 12 is 9x12 tiles.
    const cmu = dzLevels(2220, 2967);
    expect(cmu.length).toBe(13);
    expect(cmu[0]).toEqual([1, 1]);
    expect(cmu[11]).toEqual([1110, 1484]);
    expect(cmu[7]).toEqual([70, 93]);
    expect(dzLevels(16, 16).map(([w]) => w)).toEqual([1, 2, 4, 8, 16]);
    expect(dzLevels(1, 1)).toEqual([[1, 1]]);
    // 2220 = 8 * 254 + 188: first 255, middle 256, last 188 + 1.
    expect([0, 4, 8].map((t) => dzTileLength(2220, 254, 1, t))).toEqual([255, 256, 189]);
    expect([0, 8].map((t) => dzTileLength(2220, 256, 0, t))).toEqual([256, 172]);
    expect(dzTileLength(1, 254, 1, 0)).toBe(1);
    // Level 255 px wide at 254/1: the last tile is 1 px plus the left overlap.
    expect([0, 1].map((t) => dzTileLength(255, 254, 1, t))).toEqual([255, 2]);
  });

  for (const slide of SLIDES) {
    it(`${slide.id}: first, middle and last tiles of every level have the promised sizes`, async () => {
      const levels = dzLevels(slide.width, slide.height);
      // Any level beyond the count is refused, so the route's level count is the expected one.
      const beyond = await request(server, tileUrl(slide.id, levels.length, 0, 0));
      expect(beyond.status).toBe(400);
      expect(beyond.json()).toMatchObject({ error: 'invalid_level' });

      const checks: { url: string; width: number; height: number }[] = [];
      for (const layout of LAYOUTS) {
        const { tileSize: ts, overlap: o } = layout;
        levels.forEach(([lw, lh], level) => {
          const cols = Math.ceil(lw / ts);
          const rows = Math.ceil(lh / ts);
          const addresses = new Set(
            [
              [0, 0],
              [Math.floor(cols / 2), Math.floor(rows / 2)],
              [cols - 1, rows - 1],
            ].map(([c, r]) => `${c},${r}`),
          );
          for (const a of addresses) {
            const [c, r] = a.split(',').map(Number);
            checks.push({
              url: tileUrl(slide.id, level, c, r, layout.query),
              width: dzTileLength(lw, ts, o, c),
              height: dzTileLength(lh, ts, o, r),
            });
          }
          // One past the grid in each direction is out of bounds.
          checks.push({ url: tileUrl(slide.id, level, cols, 0, layout.query), width: -1, height: -1 });
          checks.push({ url: tileUrl(slide.id, level, 0, rows, layout.query), width: -1, height: -1 });
        });
      }

      const results = await mapLimit(checks, 8, async (check) => {
        const res = await request(server, check.url);
        if (check.width < 0) {
          const body = res.status === 400 ? (res.json() as { error: string }).error : res.body.toString();
          return { url: check.url, got: `${res.status} ${body}`, want: '400 tile_out_of_bounds' };
        }
        const meta = res.status === 200 ? await sharp(res.body).metadata() : undefined;
        return {
          url: check.url,
          got: `${res.status} ${res.headers.get('content-type')} ${meta?.format} ${meta?.width}x${meta?.height}`,
          want: `200 image/jpeg jpeg ${check.width}x${check.height}`,
        };
      });
      // One assertion listing every mismatch, so a failure shows all the wrong tiles at once.
      expect(results.filter((r) => r.got !== r.want)).toEqual([]);
      expect(results.length).toBeGreaterThan(levels.length * 2);
    }, 60_000); // the JPEG 2000 slide takes several seconds: every coarse level decodes its whole level 1
  }

  it('serves png and webp tiles by extension', async () => {
    for (const ext of ['png', 'webp']) {
      const res = await request(server, tileUrl(CMU, 12, 8, 11, '', ext));
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe(`image/${ext}`);
      const meta = await sharp(res.body).metadata();
      // 2220 - 8 * 254 = 188 (+1 left overlap); 2967 - 11 * 254 = 173 (+1 top overlap).
      expect([meta.format, meta.width, meta.height]).toEqual([ext, 189, 174]);
    }
  });

  it('full-resolution tile 1_1 (254/1) is the level-0 region from (253, 253), 256x256', async () => {
    const tile = await request(server, tileUrl(CMU, 12, 1, 1, '', 'jpg'));
    expect(tile.status).toBe(200);
    const region = await request(
      server,
      `/slides/${CMU}/region?x=253&y=253&width=256&height=256&level=0&format=png`,
    );
    expect(region.status).toBe(200);
    const ours = await rgbOf(tile.body);
    const ref = await rgbOf(region.body);
    const diff = compareRgb(ours, ref);
    expect(Math.max(...diff.mad)).toBeLessThanOrEqual(2);
    expect(diff.p99).toBeLessThanOrEqual(16);
  });

  it('a lossless (png) full-resolution tile equals the region read, and not the one a pixel off', async () => {
    const tile = await rgbOf((await request(server, tileUrl(CMU, 12, 1, 1, '', 'png'))).body);
    const region = async (x: number, y: number) =>
      rgbOf(
        (await request(server, `/slides/${CMU}/region?x=${x}&y=${y}&width=256&height=256&level=0&format=png`))
          .body,
      );
    expect(compareRgb(tile, await region(253, 253)).max).toBeLessThanOrEqual(1);
    // The default overlap is on both sides: from (254, 254) or (252, 252) is a visible shift.
    for (const at of [252, 254]) expect(mean(compareRgb(tile, await region(at, at)))).toBeGreaterThan(0.1);
    // 256/0 tiles start on a multiple of 256.
    const aligned = await rgbOf(
      (await request(server, tileUrl(CMU, 12, 3, 2, '?tile_size=256&overlap=0', 'png'))).body,
    );
    expect(compareRgb(aligned, await region(768, 512)).max).toBeLessThanOrEqual(1);
  });

  // Tolerance on the worst channel's mean difference. At 1/4, H&E detail is a pixel wide, and the
  // tile comes from a reduced level (CMU's synthesised one, halved twice; pyramid-jpeg's stored
  // one, JPEG-compressed again) rather than one Lanczos-3 pass over level 0: looser there. The
  // shifted comparison (~40 at 1/4) is what tells a misplaced tile.
  it.each([
    // [slide, DZ level, scale, col, row, layout query, tolerance]
    [CMU, 11, 2, 1, 1, '', 4],
    [CMU, 11, 2, 2, 1, '?tile_size=256&overlap=0', 4],
    [CMU, 10, 4, 1, 1, '', 8],
    [PYRAMID, 11, 2, 1, 1, '', 4], // stored 1/2 level (downsample 2.0003)
    [PYRAMID, 10, 4, 1, 1, '', 8],
  ] as const)(
    '%s level %i (1/%i) tile %i_%i%s matches a downscaled region read',
    async (id, level, scale, col, row, query, tolerance) => {
      const { tileSize: ts, overlap: o } = query ? LAYOUTS[1] : LAYOUTS[0];
      const lx = col * ts - (col > 0 ? o : 0);
      const ly = row * ts - (row > 0 ? o : 0);
      const w = dzTileLength(Math.ceil(2220 / scale), ts, o, col);
      const h = dzTileLength(Math.ceil(2967 / scale), ts, o, row);
      const tile = await request(server, tileUrl(id, level, col, row, query, 'png'));
      expect(tile.status).toBe(200);
      const ours = await rgbOf(tile.body);
      /** Level-0 pixels from (x, y) of the tile's level, downscaled with sharp. */
      const reference = async (x: number, y: number) => {
        const region = await request(
          server,
          `/slides/${id}/region?x=${x * scale}&y=${y * scale}&width=${w * scale}&height=${h * scale}&level=0&format=png`,
        );
        expect(region.status).toBe(200);
        return rgbOf(await sharp(region.body).resize(w, h, { fit: 'fill', kernel: 'lanczos3' }).toBuffer());
      };
      const diff = compareRgb(ours, await reference(lx, ly));
      expect(Math.max(...diff.mad)).toBeLessThanOrEqual(tolerance);
      // ... and clearly better than the same region two level pixels off.
      const off = compareRgb(ours, await reference(lx + 2, ly + 2));
      expect(mean(off)).toBeGreaterThan(2 * mean(diff) + 1);
    },
  );

  it.each([
    // [DZ level, scale, col, row]: the bottom-right tile, where the level's last pixel covers
    // less than `scale` level-0 pixels (2220 / 8 and 2967 / 8, 2967 / 2 are not whole).
    [9, 8, 1, 1],
    [11, 2, 4, 5],
  ])(
    'level %i (1/%i) edge tile %i_%i ends at the slide edge, not in background',
    async (level, scale, col, row) => {
      const lx = col * 254 - 1;
      const ly = row * 254 - 1;
      const w = dzTileLength(Math.ceil(2220 / scale), 254, 1, col);
      const h = dzTileLength(Math.ceil(2967 / scale), 254, 1, row);
      const tile = await request(server, tileUrl(CMU, level, col, row, '', 'png'));
      const ours = await rgbOf(tile.body);
      expect([ours.width, ours.height]).toEqual([w, h]);
      const region = await request(
        server,
        `/slides/${CMU}/region?x=${lx * scale}&y=${ly * scale}&width=${2220 - lx * scale}&height=${2967 - ly * scale}&level=0&format=png`,
      );
      const ref = await rgbOf(
        await sharp(region.body).resize(w, h, { fit: 'fill', kernel: 'lanczos3' }).toBuffer(),
      );
      expect(Math.max(...compareRgb(ours, ref).mad)).toBeLessThanOrEqual(4);
      // The last column and row on their own: background there would be far off.
      const strip = (img: RgbImage, left: number, top: number, sw: number, sh: number): RgbImage => {
        const data = new Uint8Array(sw * sh * 3);
        for (let y = 0; y < sh; y++)
          data.set(
            img.data.subarray(((top + y) * img.width + left) * 3, ((top + y) * img.width + left + sw) * 3),
            y * sw * 3,
          );
        return { data, width: sw, height: sh };
      };
      for (const [left, top, sw, sh] of [
        [w - 1, 0, 1, h],
        [0, h - 1, w, 1],
      ]) {
        const diff = compareRgb(strip(ours, left, top, sw, sh), strip(ref, left, top, sw, sh));
        expect(Math.max(...diff.mad)).toBeLessThanOrEqual(4);
      }
    },
  );

  it.each([
    [tileUrl(CMU, 13, 0, 0), 'invalid_level'],
    [tileUrl(CMU, 99, 0, 0), 'invalid_level'],
    [`/slides/${CMU}/dzi_files/-1/0_0.jpg`, 'invalid_level'],
    [`/slides/${CMU}/dzi_files/abc/0_0.jpg`, 'invalid_level'],
    [`/slides/${CMU}/dzi_files/1.5/0_0.jpg`, 'invalid_level'],
    [tileUrl(CMU, 0, 1, 0), 'tile_out_of_bounds'],
    [tileUrl(CMU, 0, 0, 1), 'tile_out_of_bounds'],
    [tileUrl(CMU, 12, 9, 0), 'tile_out_of_bounds'], // 2220 / 254 → 9 columns
    [tileUrl(CMU, 12, 0, 12), 'tile_out_of_bounds'], // 2967 / 254 → 12 rows
    [tileUrl(CMU, 12, 8, 12, '?tile_size=256&overlap=0'), 'tile_out_of_bounds'], // 2967 / 256 → 12 rows
    [tileUrl(CMU, 12, 999999999, 0), 'tile_out_of_bounds'],
    [`/slides/${CMU}/dzi_files/12/abc.jpg`, 'bad_request'],
    [`/slides/${CMU}/dzi_files/12/1_1`, 'bad_request'],
    [`/slides/${CMU}/dzi_files/12/1-1.jpg`, 'bad_request'],
    [`/slides/${CMU}/dzi_files/12/-1_0.jpg`, 'bad_request'],
    [`/slides/${CMU}/dzi_files/12/9999999999_0.jpg`, 'bad_request'],
    [`/slides/${CMU}/dzi_files/12/1_1.gif`, 'invalid_format'],
    [tileUrl(CMU, 12, 0, 0, '?tile_size=8'), 'bad_request'],
    [tileUrl(CMU, 12, 0, 0, '?overlap=200'), 'bad_request'],
    [tileUrl(CMU, 12, 0, 0, '?quality=101'), 'invalid_quality'],
  ])('%s → 400 %s', async (url, error) => {
    const res = await request(server, url);
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({ error, message: expect.any(String), status: 400 });
  });
});

describe('stored JPEG passthrough and HTTP caching', () => {
  it('a tile aligned with the native grid is the native tile, byte for byte, sharing its cache', async () => {
    const meta = (await request(server, `/slides/${PYRAMID}`)).json() as {
      levels: { tile_width: number; tile_height: number }[];
    };
    const ts = meta.levels[0].tile_width;
    expect(meta.levels[0].tile_height).toBe(ts);
    const top = dzLevels(2220, 2967).length - 1;
    const query = `?tile_size=${ts}&overlap=0`;

    const first = await request(server, tileUrl(PYRAMID, top, 3, 4, query));
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('image/jpeg');
    expect(first.headers.get('x-tile-cache-hit')).toBe('false');
    const native = await request(server, `/tiles/${PYRAMID}/0/3/4.jpg`);
    expect(native.status).toBe(200);
    expect(first.body.equals(native.body)).toBe(true);
    // The native route finds what the Deep Zoom request put in the cache.
    expect(native.headers.get('x-tile-cache-hit')).toBe('true');
    const again = await request(server, tileUrl(PYRAMID, top, 3, 4, query));
    expect(again.headers.get('x-tile-cache-hit')).toBe('true');
    expect(again.body.equals(first.body)).toBe(true);

    // A different native tile is different bytes (the comparison above is not vacuous).
    const other = await request(server, `/tiles/${PYRAMID}/0/4/4.jpg`);
    expect(other.body.equals(first.body)).toBe(false);
    // The default 254/1 layout does not line up with the grid: re-rendered, not the stored tile.
    const rendered = await request(server, tileUrl(PYRAMID, top, 3, 4));
    expect(rendered.status).toBe(200);
    expect(rendered.body.equals(native.body)).toBe(false);
  });

  it('answers 304 to a matching If-None-Match, with distinct ETags per layout and format', async () => {
    const url = tileUrl(CMU, 12, 2, 3);
    const first = await request(server, url);
    expect(first.status).toBe(200);
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    expect(first.headers.get('cache-control')).toMatch(/max-age=\d+/);
    const again = await request(server, url);
    expect(again.headers.get('etag')).toBe(etag);
    expect(again.headers.get('x-tile-cache-hit')).toBe('true');

    const notModified = await request(server, url, { headers: { 'If-None-Match': etag } });
    expect(notModified.status).toBe(304);
    expect(notModified.body.length).toBe(0);
    const stale = await request(server, url, { headers: { 'If-None-Match': '"something-else"' } });
    expect(stale.status).toBe(200);
    expect(stale.body.equals(first.body)).toBe(true);

    const etags = await Promise.all(
      [url, tileUrl(CMU, 12, 2, 3, '?tile_size=256&overlap=0'), tileUrl(CMU, 12, 2, 3, '', 'png')].map(
        async (u) => (await request(server, u)).headers.get('etag'),
      ),
    );
    expect(new Set(etags).size).toBe(3);

    // Passthrough tiles too.
    const pass = await request(server, tileUrl(PYRAMID, 12, 2, 2, '?tile_size=256&overlap=0'));
    const passEtag = pass.headers.get('etag')!;
    expect(passEtag).toBeTruthy();
    const pass304 = await request(server, tileUrl(PYRAMID, 12, 2, 2, '?tile_size=256&overlap=0'), {
      headers: { 'If-None-Match': passEtag },
    });
    expect(pass304.status).toBe(304);
  });
});

/** `fn` over `items`, at most `limit` at a time, results in order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
