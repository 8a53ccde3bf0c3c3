// The IIIF Image API 3.0 routes on a real server over local fixtures: the 303 and info.json,
// then every region, size, rotation, quality and format form, each checked for the output's
// dimensions and for its pixels against a direct region read (GET /slides/{id}/region, level 0,
// PNG), stored-tile passthrough byte for byte, OpenSeadragon tile grids for every scale factor,
// errors, HTTP caching and the maxArea limit.
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { compareRgb, type RgbImage } from '../support/image-compare.js';
import { request, startTestServer } from '../support/server.js';

// ---------------------------------------------------------------------------------------------
// Helpers

interface Info {
  '@context': string;
  id: string;
  type: string;
  protocol: string;
  profile: string;
  width: number;
  height: number;
  maxWidth: number;
  maxHeight: number;
  maxArea: number;
  sizes: { width: number; height: number }[];
  tiles: { width: number; height: number; scaleFactors: number[] }[];
  extraFormats: string[];
  extraQualities: string[];
  extraFeatures: string[];
}

interface SlideMeta {
  width: number;
  height: number;
  levels: { width: number; height: number; tile_width: number; tile_height: number; downsample: number }[];
}

type Response = Awaited<ReturnType<typeof request>>;

let dir: string;
let server: RunningServer;

/** Slide ids as they appear in URLs (the SVS sits in a folder, so its id has encoded slashes). */
const CMU = encodeURIComponent('cases/42/CMU-1-Small-Region.svs');
const PYRAMID = 'pyramid-jpeg.tif';
const BOXES = 'boxes.tiff';

/** A rectangle of CMU-1 full of tissue (not symmetric, so rotations and mirrors show). */
const R = { x: 700, y: 1900, w: 300, h: 200 };
const R_TEXT = `${R.x},${R.y},${R.w},${R.h}`;
const W = R.w;
const H = R.h;

function iiif(id: string, rest: string, init: RequestInit = {}, on = server): Promise<Response> {
  return request(on, `/iiif/3/${id}${rest ? `/${rest}` : ''}`, init);
}

async function info(id: string, on = server): Promise<Info> {
  const res = await iiif(id, 'info.json', {}, on);
  expect(res.status).toBe(200);
  return res.json() as Info;
}

async function meta(id: string): Promise<SlideMeta> {
  return (await request(server, `/slides/${id}`)).json() as SlideMeta;
}

/** Any image sharp reads, as 8-bit RGB (alpha flattened onto white). */
async function rgbOf(body: Buffer): Promise<RgbImage> {
  const { data, info } = await sharp(body)
    .flatten({ background: '#ffffff' })
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  expect(info.channels).toBe(3);
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

/** The direct region read: w x h level-0 pixels at (x, y), lossless. */
async function regionRead(id: string, x: number, y: number, w: number, h: number): Promise<RgbImage> {
  const res = await request(
    server,
    `/slides/${id}/region?x=${x}&y=${y}&width=${w}&height=${h}&level=0&format=png`,
  );
  expect(res.status).toBe(200);
  const image = await rgbOf(res.body);
  expect([image.width, image.height]).toEqual([w, h]);
  return image;
}

/** GET an IIIF image; asserts 200, the content type and the output dimensions. */
async function iiifImage(
  id: string,
  params: string,
  expected: { width: number; height: number },
  on = server,
): Promise<Response> {
  const res = await iiif(id, params, {}, on);
  expect(res.status, `${params}: ${res.body.toString().slice(0, 200)}`).toBe(200);
  const ext = params.slice(params.lastIndexOf('.') + 1);
  expect(res.headers.get('content-type')).toBe(ext === 'jpg' ? 'image/jpeg' : `image/${ext}`);
  const m = await sharp(res.body).metadata();
  expect({ width: m.width, height: m.height }, params).toEqual(expected);
  return res;
}

/** Asserts a 400 (or another status) with the `{error, message, status}` JSON body. */
async function expectError(id: string, params: string, status = 400, error?: string): Promise<void> {
  const res = await iiif(id, params);
  expect(res.status, params).toBe(status);
  const body = res.json() as { error: string; message: string; status: number };
  expect(body, params).toMatchObject({
    error: error ?? expect.any(String),
    message: expect.any(String),
    status,
  });
}

/** Same-size comparison: lossless renderings of the same pixels are near-identical. */
function expectSame(actual: RgbImage, expected: RgbImage, tolerance = { mad: 2, p99: 16 }): void {
  const diff = compareRgb(actual, expected);
  expect(Math.max(...diff.mad)).toBeLessThanOrEqual(tolerance.mad);
  expect(diff.p99).toBeLessThanOrEqual(tolerance.p99);
}

/**
 * Tolerance for a resampled rendering against the reference resampled here. Levels with
 * downsamples like 1.9997 sit up to a level-0 pixel off a whole-factor average, which on dense
 * tissue costs a mean difference of ~7; a misalignment by one output pixel costs ~30.
 */
const RESAMPLED = { mad: 9, p99: 56 };

/**
 * The full-size read brought to `width x height` independently of the server's pipeline: an
 * area average when both factors are whole (what a downscale should look like, whatever the
 * kernel), else sharp's Lanczos-3.
 */
async function resampled(image: RgbImage, width: number, height: number): Promise<RgbImage> {
  const fx = image.width / width;
  const fy = image.height / height;
  if (Number.isInteger(fx) && Number.isInteger(fy)) {
    const data = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        for (let c = 0; c < 3; c++) {
          let sum = 0;
          for (let dy = 0; dy < fy; dy++)
            for (let dx = 0; dx < fx; dx++)
              sum += image.data[((y * fy + dy) * image.width + x * fx + dx) * 3 + c];
          data[(y * width + x) * 3 + c] = Math.round(sum / (fx * fy));
        }
      }
    }
    return { data, width, height };
  }
  const { data, info } = await sharp(image.data, {
    raw: { width: image.width, height: image.height, channels: 3 },
  })
    .resize(width, height, { fit: 'fill', kernel: 'lanczos3' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

function pixel(image: RgbImage, x: number, y: number): number[] {
  const i = (y * image.width + x) * 3;
  return [image.data[i], image.data[i + 1], image.data[i + 2]];
}

/**
 * Builds `width x height` pixels where out(X, Y) = source(map(X, Y)): the reference for
 * rotations and mirrors, computed independently of the server's (sharp's) transforms.
 */
function remap(
  source: RgbImage,
  width: number,
  height: number,
  map: (x: number, y: number) => [number, number],
): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [sx, sy] = map(x, y);
      data.set(pixel(source, sx, sy), (y * width + x) * 3);
    }
  }
  return { data, width, height };
}

/** Rec. 709 luma of each pixel (what a grey rendering should roughly equal). */
function luma(image: RgbImage): Float64Array {
  const out = new Float64Array(image.width * image.height);
  for (let i = 0; i < out.length; i++) {
    const [r, g, b] = [image.data[i * 3], image.data[i * 3 + 1], image.data[i * 3 + 2]];
    out[i] = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }
  return out;
}

/**
 * Mean absolute difference between `out` and `source` turned clockwise by `degrees` about the
 * centres of both, over the output pixels whose source lies well inside `source` (bilinear).
 */
function rotatedDifference(out: RgbImage, source: RgbImage, degrees: number): number {
  const t = (degrees * Math.PI) / 180;
  const [cos, sin] = [Math.cos(t), Math.sin(t)];
  let sum = 0;
  let n = 0;
  for (let y = 0; y < out.height; y++) {
    for (let x = 0; x < out.width; x++) {
      const dx = x + 0.5 - out.width / 2;
      const dy = y + 0.5 - out.height / 2;
      // Inverse of a clockwise turn (y down): rotate the output offset anticlockwise.
      const sx = dx * cos + dy * sin + source.width / 2 - 0.5;
      const sy = -dx * sin + dy * cos + source.height / 2 - 0.5;
      if (sx < 2 || sy < 2 || sx > source.width - 3 || sy > source.height - 3) continue;
      const [x0, y0] = [Math.floor(sx), Math.floor(sy)];
      const [fx, fy] = [sx - x0, sy - y0];
      const [a, b, c, d] = [
        pixel(source, x0, y0),
        pixel(source, x0 + 1, y0),
        pixel(source, x0, y0 + 1),
        pixel(source, x0 + 1, y0 + 1),
      ];
      const o = pixel(out, x, y);
      for (let k = 0; k < 3; k++) {
        const v = (1 - fy) * ((1 - fx) * a[k] + fx * b[k]) + fy * ((1 - fx) * c[k] + fx * d[k]);
        sum += Math.abs(o[k] - v);
      }
      n += 3;
    }
  }
  return sum / n;
}

/**
 * OpenSeadragon's IIIF tile for scale factor `s`, column `col`, row `row`: the region in level-0
 * pixels and the size `ceil(w/s),`.
 */
function osdTile(width: number, height: number, tw: number, th: number, s: number, col: number, row: number) {
  const x = col * tw * s;
  const y = row * th * s;
  const w = Math.min(tw * s, width - x);
  const h = Math.min(th * s, height - y);
  return { x, y, w, h, outWidth: Math.ceil(w / s), outHeight: Math.ceil(h / s) };
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-iiif-'));
  await mkdir(path.join(dir, 'cases/42'), { recursive: true });
  await copyFile(
    fixture('wsi/svs/CMU-1-Small-Region.svs'),
    path.join(dir, 'cases/42/CMU-1-Small-Region.svs'),
  );
  await copyFile(fixture('wsi/generated/pyramid-jpeg.tif'), path.join(dir, PYRAMID));
  await copyFile(fixture('wsi/openslide/boxes.tiff'), path.join(dir, BOXES));
  server = await startTestServer(dir);
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('GET /iiif/3/{id} and info.json', () => {
  it('redirects the bare id to info.json with a 303', async () => {
    const res = await iiif(CMU, '', { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(`${server.url}/iiif/3/${CMU}/info.json`);
    // A query (e.g. a viewer token) survives the redirect.
    const withQuery = await request(server, `/iiif/3/${CMU}?vt=abc&exp=123`, { redirect: 'manual' });
    expect(withQuery.headers.get('location')).toBe(`${server.url}/iiif/3/${CMU}/info.json?vt=abc&exp=123`);
  });

  it('describes the image: absolute URL-encoded id, level 2, size, limits, extras', async () => {
    const res = await iiif(CMU, 'info.json');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('link')).toBe('<http://iiif.io/api/image/3/level2.json>;rel="profile"');
    const body = res.json() as Info;
    expect(body).toMatchObject({
      '@context': 'http://iiif.io/api/image/3/context.json',
      id: `${server.url}/iiif/3/cases%2F42%2FCMU-1-Small-Region.svs`,
      type: 'ImageService3',
      protocol: 'http://iiif.io/api/image',
      profile: 'level2',
      width: 2220,
      height: 2967,
      maxWidth: 16383,
      maxHeight: 16383,
      maxArea: 64 * 1024 * 1024,
    });
    expect(body.id).not.toMatch(/\/$/);
    expect(body.extraFormats).toEqual(expect.arrayContaining(['webp']));
    expect(body.extraQualities).toEqual(expect.arrayContaining(['gray', 'bitonal']));
    expect(body.extraFeatures).toEqual(
      expect.arrayContaining(['mirroring', 'rotationArbitrary', 'sizeUpscaling', 'profileLinkHeader']),
    );
    // sizes: every level (all within maxArea here), including the full size.
    const levels = (await meta(CMU)).levels;
    expect(body.sizes).toHaveLength(levels.length);
    expect(body.sizes).toEqual(expect.arrayContaining([{ width: 2220, height: 2967 }]));
    for (const l of levels) expect(body.sizes).toContainEqual({ width: l.width, height: l.height });
  });

  it.each([CMU, PYRAMID, BOXES])(
    '%s: tiles are the native tile size, scaleFactors the level downsamples',
    async (id) => {
      const [body, m] = await Promise.all([info(id), meta(id)]);
      expect([body.width, body.height]).toEqual([m.width, m.height]);
      expect(body.tiles).toHaveLength(1);
      expect(body.tiles[0].width).toBe(m.levels[0].tile_width);
      expect(body.tiles[0].height).toBe(m.levels[0].tile_height);
      expect(body.tiles[0].scaleFactors).toEqual(m.levels.map((l) => Math.round(l.downsample)));
      expect(body.tiles[0].scaleFactors[0]).toBe(1);
    },
  );

  it('pyramid-jpeg.tif: 256px tiles, scale factors 1..16', async () => {
    const body = await info(PYRAMID);
    expect(body.tiles).toEqual([{ width: 256, height: 256, scaleFactors: [1, 2, 4, 8, 16] }]);
  });

  it('answers application/ld+json with the context profile when asked', async () => {
    const res = await iiif(CMU, 'info.json', { headers: { Accept: 'application/ld+json' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(
      /^application\/ld\+json; ?profile="http:\/\/iiif\.io\/api\/image\/3\/context\.json"(;|$)/,
    );
    expect((res.json() as Info).type).toBe('ImageService3');
  });

  it('allows any origin (CORS) for info.json and images', async () => {
    const headers = { Origin: 'https://viewer.example.org' };
    const a = await iiif(CMU, 'info.json', { headers });
    expect(a.headers.get('access-control-allow-origin')).toBe('*');
    const b = await iiif(BOXES, 'full/max/0/default.jpg', { headers });
    expect(b.status).toBe(200);
    expect(b.headers.get('access-control-allow-origin')).toBe('*');
  });
});

describe('region', () => {
  it('full: the whole image at full size', async () => {
    const res = await iiifImage(BOXES, 'full/max/0/default.png', { width: 300, height: 250 });
    expectSame(await rgbOf(res.body), await regionRead(BOXES, 0, 0, 300, 250));
  });

  it('square on a portrait image: the centred 2220x2220 square', async () => {
    const res = await iiifImage(CMU, 'square/max/0/default.png', { width: 2220, height: 2220 });
    const top = Math.floor((2967 - 2220) / 2); // 373
    const patchOf = async (px: number, py: number) =>
      rgbOf(await sharp(res.body).extract({ left: px, top: py, width: 64, height: 64 }).png().toBuffer());
    // Patches of tissue near the square's top, middle and bottom, against direct reads.
    for (const [px, py] of [
      [900, 200],
      [700, 1500],
      [1600, 2150],
    ]) {
      expectSame(await patchOf(px, py), await regionRead(CMU, px, top + py, 64, 64));
    }
    // Exactly centred: the patch one row lower differs by more than the right one.
    const patch = await patchOf(700, 1500);
    const right = Math.max(...compareRgb(patch, await regionRead(CMU, 700, top + 1500, 64, 64)).mad);
    const lower = Math.max(...compareRgb(patch, await regionRead(CMU, 700, top + 1501, 64, 64)).mad);
    expect(lower).toBeGreaterThan(Math.max(1, 3 * right));
  });

  it('square on a landscape image: the centred 250x250 square', async () => {
    const res = await iiifImage(BOXES, 'square/max/0/default.png', { width: 250, height: 250 });
    expectSame(await rgbOf(res.body), await regionRead(BOXES, 25, 0, 250, 250));
  });

  it('x,y,w,h: that rectangle of level 0', async () => {
    const res = await iiifImage(CMU, `${R_TEXT}/max/0/default.png`, { width: R.w, height: R.h });
    const ref = await regionRead(CMU, R.x, R.y, R.w, R.h);
    expectSame(await rgbOf(res.body), ref);
    // ... and not some other rectangle.
    const shifted = await regionRead(CMU, R.x + 40, R.y + 40, R.w, R.h);
    expect(Math.max(...compareRgb(await rgbOf(res.body), shifted).mad)).toBeGreaterThan(5);
  });

  it('pct:x,y,w,h with decimals: percentages of the full size, origin down, extent rounded', async () => {
    // 40.25% of 2220 = 893.6, 65.5% of 2967 = 1943.4, 5.5% of 2220 = 122.1, 4.75% of 2967 = 140.9.
    const res = await iiifImage(CMU, 'pct:40.25,65.5,5.5,4.75/max/0/default.png', {
      width: 122,
      height: 141,
    });
    expectSame(await rgbOf(res.body), await regionRead(CMU, 893, 1943, 122, 141));
  });

  it('a tiny pct region that starts inside the image stays inside it', async () => {
    // 99.9% of 300 = 299.7: the origin rounds down to the last column, not out of the image.
    await iiifImage(BOXES, 'pct:99.9,0,1,1/max/0/default.png', { width: 1, height: 3 });
    await iiifImage(BOXES, 'pct:0,0,0.1,0.1/max/0/default.png', { width: 1, height: 1 });
  });

  it('a region partly outside is clipped to the image', async () => {
    const res = await iiifImage(CMU, '1000,2900,300,500/max/0/default.png', { width: 300, height: 67 });
    expectSame(await rgbOf(res.body), await regionRead(CMU, 1000, 2900, 300, 67));
    // Past the right and bottom edges at once.
    const corner = await iiifImage(BOXES, '250,200,100,100/max/0/default.png', { width: 50, height: 50 });
    expectSame(await rgbOf(corner.body), await regionRead(BOXES, 250, 200, 50, 50));
    // pct: 90% + 20% runs past the edge too.
    await iiifImage(BOXES, 'pct:90,80,20,30/max/0/default.png', { width: 30, height: 50 });
  });

  it.each([
    ['2220,0,10,10', 'starts right of the image'],
    ['0,2967,10,10', 'starts below the image'],
    ['5000,5000,10,10', 'far outside'],
    ['pct:100,0,10,10', 'pct: starts at the right edge'],
    ['0,0,0,10', 'zero width'],
    ['0,0,10,0', 'zero height'],
    ['pct:0,0,0,5', 'pct: zero width'],
    ['abc', 'garbage'],
    ['1,2,3', 'three numbers'],
    ['-1,0,10,10', 'negative'],
    ['1.5,0,10,10', 'fractional pixels'],
    ['pct:a,b,c,d', 'pct garbage'],
  ])('%s (%s) → 400', async (region) => {
    await expectError(CMU, `${region}/max/0/default.jpg`, 400, 'bad_request');
  });
});

describe('size', () => {
  let ref: RgbImage;
  beforeAll(async () => {
    ref = await regionRead(CMU, R.x, R.y, R.w, R.h);
  });

  it('max: the region at full size', async () => {
    const res = await iiifImage(CMU, `${R_TEXT}/max/0/default.png`, { width: 300, height: 200 });
    expectSame(await rgbOf(res.body), ref);
    await iiifImage(CMU, 'full/max/0/default.jpg', { width: 2220, height: 2967 });
  });

  it.each([
    ['150,', 150, 100],
    [',100', 150, 100],
    ['pct:50', 150, 100],
    ['!150,150', 150, 100],
    ['!1000,50', 75, 50],
    ['!1000,1000', 300, 200], // !w,h without ^ stops at the region's size
    ['300,100', 300, 100], // w,h distorts
    ['100,200', 100, 200],
    ['pct:100', 300, 200],
    ['^600,', 600, 400],
    ['^,300', 450, 300],
    ['^pct:150', 450, 300],
    ['^600,250', 600, 250],
    ['^!600,600', 600, 400],
    // ^max: see the maxArea describe (here it would be a 67-megapixel image).
  ])('%s → %ix%i, pixels of the resampled region', async (size, width, height) => {
    const res = await iiifImage(CMU, `${R_TEXT}/${size}/0/default.png`, { width, height });
    expectSame(await rgbOf(res.body), await resampled(ref, width, height), RESAMPLED);
  });

  it('pct:50 of a larger area matches the full-size read, averaged 2x2, and not a shifted one', async () => {
    const [x, y] = [600, 1800];
    const res = await iiifImage(CMU, `${x},${y},800,600/pct:50/0/default.png`, { width: 400, height: 300 });
    const out = await rgbOf(res.body);
    const expected = await resampled(await regionRead(CMU, x, y, 800, 600), 400, 300);
    expectSame(out, expected, RESAMPLED);
    // The tolerance is tight enough to see a one-output-pixel misalignment.
    const shifted = await resampled(await regionRead(CMU, x + 2, y, 800, 600), 400, 300);
    expect(Math.max(...compareRgb(out, shifted).mad)).toBeGreaterThan(
      2 * Math.max(...compareRgb(out, expected).mad),
    );
  });

  it.each([
    ['301,', 'wider than the region'],
    [',201', 'taller than the region'],
    ['400,100', 'w,h wider than the region'],
    ['pct:150', 'pct over 100 without ^'],
    ['pct:100.5', 'pct over 100 without ^'],
    ['^17000,', 'beyond maxWidth'],
    ['^,17000', 'beyond maxHeight'],
    ['^pct:5000', 'beyond maxArea'],
    ['abc', 'garbage'],
    ['pct:', 'pct without a number'],
    ['pct:0', 'zero percent'],
    ['pct:-5', 'negative percent'],
    [',', 'neither w nor h'],
    ['0,', 'zero width'],
    ['!100,', '!w,h needs both'],
    ['100,100,100', 'three numbers'],
    ['^', 'a bare ^'],
    ['max,', 'max with a comma'],
    ['full', 'IIIF 2 full'],
  ])('%s → 400 (%s)', async (size) => {
    await expectError(CMU, `${R_TEXT}/${size}/0/default.jpg`, 400, 'bad_request');
  });
});

describe('rotation', () => {
  let ref: RgbImage;
  beforeAll(async () => {
    ref = await regionRead(CMU, R.x, R.y, R.w, R.h);
    // The reference is asymmetric, so a transform the server skipped would show.
    const flipped = remap(ref, R.w, R.h, (x, y) => [R.w - 1 - x, R.h - 1 - y]);
    expect(Math.max(...compareRgb(ref, flipped).mad)).toBeGreaterThan(5);
  });

  it.each<[string, number, number, (x: number, y: number) => [number, number]]>([
    ['0', W, H, (x, y) => [x, y]],
    ['360', W, H, (x, y) => [x, y]],
    // Clockwise: the output's top-left comes from the region's bottom-left.
    ['90', H, W, (x, y) => [y, H - 1 - x]],
    ['180', W, H, (x, y) => [W - 1 - x, H - 1 - y]],
    ['270', H, W, (x, y) => [W - 1 - y, x]],
    // Mirroring first (left/right swapped), then the rotation.
    ['!0', W, H, (x, y) => [W - 1 - x, y]],
    ['!90', H, W, (x, y) => [W - 1 - y, H - 1 - x]],
    ['!180', W, H, (x, y) => [x, H - 1 - y]],
  ])('%s → %ix%i with the pixels moved accordingly', async (rotation, width, height, map) => {
    const res = await iiifImage(CMU, `${R_TEXT}/max/${rotation}/default.png`, { width, height });
    const out = await rgbOf(res.body);
    expectSame(out, remap(ref, width, height, map));
    // A pixel sample, spelled out: the output's top-left corner.
    const [sx, sy] = map(0, 0);
    const [a, b] = [pixel(out, 0, 0), pixel(ref, sx, sy)];
    for (let c = 0; c < 3; c++) expect(Math.abs(a[c] - b[c])).toBeLessThanOrEqual(8);
  });

  it('22.5: a larger canvas holding the rotated region, corners in the background colour', async () => {
    const res = await iiif(CMU, `${R_TEXT}/max/22.5/default.png`);
    expect(res.status).toBe(200);
    const out = await rgbOf(res.body);
    const t = (22.5 * Math.PI) / 180;
    const bw = W * Math.cos(t) + H * Math.sin(t); // 223.05
    const bh = W * Math.sin(t) + H * Math.cos(t); // 168.9
    expect(Math.abs(out.width - bw)).toBeLessThanOrEqual(2);
    expect(Math.abs(out.height - bh)).toBeLessThanOrEqual(2);
    // Outside the rotated rectangle: the slide's background (white).
    for (const [x, y] of [
      [0, 0],
      [out.width - 1, 0],
      [0, out.height - 1],
      [out.width - 1, out.height - 1],
    ])
      expect(pixel(out, x, y)).toEqual([255, 255, 255]);
    // Inside: the region turned clockwise about its centre (and clearly not anticlockwise).
    const clockwise = rotatedDifference(out, ref, 22.5);
    expect(clockwise).toBeLessThanOrEqual(12);
    expect(rotatedDifference(out, ref, -22.5)).toBeGreaterThan(2 * clockwise);
  });

  it.each(['361', 'abc', '-90', '!', '90deg', '!!90', '1000'])('%s → 400', async (rotation) => {
    await expectError(CMU, `${R_TEXT}/max/${rotation}/default.jpg`, 400, 'bad_request');
  });
});

describe('quality and format', () => {
  let ref: RgbImage;
  beforeAll(async () => {
    ref = await regionRead(CMU, R.x, R.y, R.w, R.h);
  });

  it('default and color are the colour image', async () => {
    const d = await iiifImage(CMU, `${R_TEXT}/max/0/default.png`, { width: W, height: H });
    const c = await iiifImage(CMU, `${R_TEXT}/max/0/color.png`, { width: W, height: H });
    expectSame(await rgbOf(d.body), ref);
    expectSame(await rgbOf(c.body), ref);
    // The region really is coloured (so the grey test below can fail).
    expect(ref.data.some((_, i) => i % 3 === 0 && Math.abs(ref.data[i] - ref.data[i + 1]) > 20)).toBe(true);
  });

  /** The single band of a one-channel image (sharp would otherwise hand back sRGB). */
  async function bandOf(body: Buffer): Promise<{ data: Buffer; channels: number }> {
    const { data, info } = await sharp(body).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
    return { data, channels: info.channels };
  }

  it.each([
    ['png', 0],
    ['jpg', 4],
  ])('gray.%s is one 8-bit channel close to the colour image luma', async (ext, tolerance) => {
    const res = await iiifImage(CMU, `${R_TEXT}/max/0/gray.${ext}`, { width: W, height: H });
    const m = await sharp(res.body).metadata();
    expect({ channels: m.channels, space: m.space, depth: m.depth }).toEqual({
      channels: 1,
      space: 'b-w',
      depth: 'uchar',
    });
    const { data, channels } = await bandOf(res.body);
    expect(channels).toBe(1);
    expect(data.length).toBe(W * H);
    const y = luma(ref);
    let sum = 0;
    for (let i = 0; i < y.length; i++) sum += Math.abs(data[i] - y[i]);
    expect(sum / y.length).toBeLessThanOrEqual(8 + tolerance);
    // Not a constant image: the band carries the tissue's structure.
    expect(Math.max(...data) - Math.min(...data)).toBeGreaterThan(100);
  });

  it('gray.webp (WebP has no grayscale mode): R = G = B within the codec’s rounding', async () => {
    const res = await iiifImage(CMU, `${R_TEXT}/max/0/gray.webp`, { width: W, height: H });
    const out = await rgbOf(res.body);
    let coloured = 0;
    for (let i = 0; i < out.data.length; i += 3) {
      if (Math.abs(out.data[i] - out.data[i + 1]) > 3 || Math.abs(out.data[i] - out.data[i + 2]) > 3)
        coloured++;
    }
    expect(coloured).toBe(0);
  });

  it('bitonal.png: a 1-bit PNG of black and white, dark where the image is dark and light where light', async () => {
    const res = await iiifImage(CMU, `${R_TEXT}/max/0/bitonal.png`, { width: W, height: H });
    // IHDR: bit depth 1 (byte 24), colour type 3 = palette (byte 25) of two entries.
    expect([res.body[24], res.body[25]]).toEqual([1, 3]);
    const m = await sharp(res.body).metadata();
    expect(m.bitsPerSample).toBe(1);
    const { data } = await bandOf(res.body);
    expect([...new Set(data)].sort((a, b) => a - b)).toEqual([0, 255]);
    const y = luma(ref);
    let checked = 0;
    for (let i = 0; i < y.length; i++) {
      if (y[i] < 100 || y[i] > 160) {
        expect(data[i], `pixel ${i} luma ${y[i]}`).toBe(y[i] < 100 ? 0 : 255);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(1000);
    // Smaller than the 8-bit gray PNG of the same region.
    const gray = await iiif(CMU, `${R_TEXT}/max/0/gray.png`);
    expect(res.body.length).toBeLessThan(gray.body.length / 2);
  });

  it('bitonal.jpg: one channel, values at 0 or 255 but for JPEG ringing', async () => {
    const res = await iiifImage(CMU, `${R_TEXT}/max/0/bitonal.jpg`, { width: W, height: H });
    expect((await sharp(res.body).metadata()).channels).toBe(1);
    const { data } = await bandOf(res.body);
    const near = data.filter((v) => v < 40 || v > 215).length;
    expect(near / data.length).toBeGreaterThan(0.9);
  });

  it.each(['grey', 'native', 'colour', 'Default'])('quality %s → 400', async (quality) => {
    await expectError(CMU, `${R_TEXT}/max/0/${quality}.jpg`, 400, 'bad_request');
  });

  it('a file name without a format → 400', async () => {
    await expectError(CMU, `${R_TEXT}/max/0/default`, 400, 'bad_request');
  });

  it.each([
    ['jpg', 'image/jpeg', 'jpeg', { mad: 12, p99: 64 }],
    ['png', 'image/png', 'png', { mad: 0, p99: 0 }],
    ['webp', 'image/webp', 'webp', { mad: 12, p99: 64 }],
  ])('.%s → %s', async (ext, type, format, tolerance) => {
    const res = await iiifImage(CMU, `${R_TEXT}/max/0/default.${ext}`, { width: W, height: H });
    expect(res.headers.get('content-type')).toBe(type);
    expect((await sharp(res.body).metadata()).format).toBe(format);
    expect(res.headers.get('link')).toBe('<http://iiif.io/api/image/3/level2.json>;rel="profile"');
    // PNG is lossless; the lossy formats still look like the region.
    expectSame(await rgbOf(res.body), ref, tolerance);
  });

  it.each(['tif', 'gif', 'jp2', 'pdf'])('.%s → 400 with a JSON error', async (ext) => {
    const res = await iiif(CMU, `${R_TEXT}/max/0/default.${ext}`);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.json()).toEqual({ error: 'invalid_format', message: expect.any(String), status: 400 });
  });
});

describe('stored-tile passthrough (pyramid-jpeg.tif)', () => {
  it.each([
    [0, 2, 3],
    [1, 1, 2],
    [2, 1, 1],
    [3, 0, 0],
  ])('level %i tile (%i, %i) by its IIIF URL is the native tile, byte for byte', async (level, tx, ty) => {
    const m = await meta(PYRAMID);
    const s = Math.round(m.levels[level].downsample);
    const t = osdTile(m.width, m.height, 256, 256, s, tx, ty);
    expect([t.w, t.h]).toEqual([256 * s, 256 * s]); // interior: a full tile
    const res = await iiifImage(PYRAMID, `${t.x},${t.y},${t.w},${t.h}/${t.outWidth},/0/default.jpg`, {
      width: 256,
      height: 256,
    });
    const native = await request(server, `/tiles/${PYRAMID}/${level}/${tx}/${ty}.jpg`);
    expect(native.status).toBe(200);
    expect(res.body.equals(native.body)).toBe(true);
    // The w,h form of the same tile too.
    const wh = await iiif(PYRAMID, `${t.x},${t.y},${t.w},${t.h}/256,256/0/default.jpg`);
    expect(wh.body.equals(native.body)).toBe(true);
  });

  it('a transformed tile is rendered, not passed through', async () => {
    const native = await request(server, `/tiles/${PYRAMID}/0/2/3.jpg`);
    const mirrored = await iiifImage(PYRAMID, '512,768,256,256/256,/!0/default.jpg', {
      width: 256,
      height: 256,
    });
    expect(mirrored.body.equals(native.body)).toBe(false);
  });

  it('a region one pixel off a stored tile is rendered, not passed through', async () => {
    const native = await request(server, `/tiles/${PYRAMID}/0/0/0.jpg`);
    for (const region of ['1,0,256,256', '0,1,256,256', '0,0,257,256']) {
      const res = await iiifImage(PYRAMID, `${region}/256,256/0/default.jpg`, { width: 256, height: 256 });
      expect(res.body.equals(native.body), region).toBe(false);
    }
  });

  it('an edge tile comes back at the clipped size, not the padded stored size', async () => {
    // Level 0 column 8 holds x 2048..2219: 172 pixels of a 256-pixel stored tile.
    const native = await request(server, `/tiles/${PYRAMID}/0/8/0.jpg`);
    const stored = await sharp(native.body).metadata();
    expect([stored.width, stored.height]).toEqual([256, 256]);
    await iiifImage(PYRAMID, '2048,0,172,256/172,/0/default.jpg', { width: 172, height: 256 });
    // Bottom-right corner tile: 172 x 151.
    const corner = await iiifImage(PYRAMID, '2048,2816,172,151/172,/0/default.png', {
      width: 172,
      height: 151,
    });
    expectSame(await rgbOf(corner.body), await regionRead(PYRAMID, 2048, 2816, 172, 151));
  });
});

describe('OpenSeadragon tile URLs for every scale factor', () => {
  it.each([CMU, PYRAMID, BOXES])('%s: first, middle and last tile of each level', async (id) => {
    const body = await info(id);
    const { width: tw, height: th, scaleFactors } = body.tiles[0];
    const jobs: Promise<void>[] = [];
    for (const s of scaleFactors) {
      const cols = Math.ceil(body.width / (tw * s));
      const rows = Math.ceil(body.height / (th * s));
      const picks = new Set(
        [
          [0, 0],
          [Math.floor(cols / 2), Math.floor(rows / 2)],
          [cols - 1, rows - 1],
          [cols - 1, 0],
        ].map((p) => p.join()),
      );
      for (const pick of picks) {
        const [col, row] = pick.split(',').map(Number);
        const t = osdTile(body.width, body.height, tw, th, s, col, row);
        const region = `${t.x},${t.y},${t.w},${t.h}`;
        jobs.push(
          (async () => {
            // `w,`: exactly w wide, the height following the region's aspect ratio (for narrow
            // edge tiles that can differ from ceil(h/s) by more than a pixel).
            const res = await iiif(id, `${region}/${t.outWidth},/0/default.jpg`);
            expect(res.status, `${id} s=${s} ${region}`).toBe(200);
            expect(res.headers.get('content-type')).toBe('image/jpeg');
            const m = await sharp(res.body).metadata();
            expect(m.width, `${id} s=${s} ${region}`).toBe(t.outWidth);
            expect(Math.abs(m.height! - (t.h * t.outWidth) / t.w), `${id} s=${s} ${region}`).toBeLessThan(1);
            // `w,h` (what IIIF 3 viewers send): exactly the promised size.
            await iiifImage(id, `${region}/${t.outWidth},${t.outHeight}/0/default.jpg`, {
              width: t.outWidth,
              height: t.outHeight,
            });
          })(),
        );
      }
      if (cols === 1 && rows === 1) {
        // A level within one tile: OpenSeadragon asks for the full region at the level's size.
        const size = { width: Math.ceil(body.width / s), height: Math.ceil(body.height / s) };
        jobs.push(iiifImage(id, `full/${size.width},${size.height}/0/default.jpg`, size).then(() => {}));
      }
    }
    await Promise.all(jobs);
    expect(jobs.length).toBeGreaterThanOrEqual(scaleFactors.length);
  });

  it('a coarse OpenSeadragon tile matches the full-size read, downscaled', async () => {
    // CMU at scale factor 4, tile (1, 1): level-0 960..1920 x 960..1920 → 240x240.
    const t = osdTile(2220, 2967, 240, 240, 4, 1, 1);
    const res = await iiifImage(CMU, `${t.x},${t.y},${t.w},${t.h}/${t.outWidth},/0/default.png`, {
      width: 240,
      height: 240,
    });
    const full = await regionRead(CMU, t.x, t.y, t.w, t.h);
    expectSame(await rgbOf(res.body), await resampled(full, 240, 240), RESAMPLED);
  });
});

describe('errors and HTTP caching', () => {
  it.each(['info.json', 'full/max/0/default.jpg', '0,0,10,10/10,/0/default.png'])(
    'unknown slide: %s → 404 not_found',
    async (rest) => {
      await expectError('missing.svs', rest, 404, 'not_found');
    },
  );

  it('ETag, 304 on If-None-Match, 200 on a different tag', async () => {
    const url = `${R_TEXT}/pct:25/0/default.jpg`;
    const first = await iiif(CMU, url);
    expect(first.status).toBe(200);
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    expect(first.headers.get('cache-control')).toMatch(/max-age=\d+/);
    const again = await iiif(CMU, url, { headers: { 'If-None-Match': etag } });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    const other = await iiif(CMU, url, { headers: { 'If-None-Match': '"something-else"' } });
    expect(other.status).toBe(200);
    expect(other.body.equals(first.body)).toBe(true);
    // A different request has a different tag.
    const png = await iiif(CMU, `${R_TEXT}/pct:25/0/default.png`);
    expect(png.headers.get('etag')).not.toBe(etag);
  });
});

describe('maxArea (--max-region-pixels 1000000)', () => {
  let small: RunningServer;
  const MAX = 1_000_000;
  beforeAll(async () => {
    small = await startTestServer(dir, ['--max-region-pixels', String(MAX)]);
  });
  afterAll(async () => {
    await small?.close();
  });

  it('info.json advertises maxArea, and sizes only within it', async () => {
    const body = await info(CMU, small);
    expect(body.maxArea).toBe(MAX);
    expect(body.sizes.length).toBeGreaterThan(0);
    for (const s of body.sizes) expect(s.width * s.height).toBeLessThanOrEqual(MAX);
    expect(body.sizes).not.toContainEqual({ width: 2220, height: 2967 });
    expect(body.sizes).toContainEqual({ width: 555, height: 742 });
  });

  it('max and ^max of the full image fit maxArea, keeping the aspect ratio', async () => {
    const scale = Math.sqrt(MAX / (2220 * 2967));
    const expected = { width: Math.floor(2220 * scale), height: Math.floor(2967 * scale) }; // 864x1156
    for (const size of ['max', '^max']) {
      const res = await iiifImage(CMU, `full/${size}/0/default.jpg`, expected, small);
      expect(res.status).toBe(200);
    }
    expect(expected.width * expected.height).toBeLessThanOrEqual(MAX);
  });

  it('^max upscales a small region up to maxArea; max does not', async () => {
    const scale = Math.sqrt(MAX / (R.w * R.h));
    const up = { width: Math.floor(R.w * scale), height: Math.floor(R.h * scale) }; // 1224x816
    const res = await iiifImage(CMU, `${R_TEXT}/^max/0/default.png`, up, small);
    const ref = await regionRead(CMU, R.x, R.y, R.w, R.h);
    expectSame(await rgbOf(res.body), await resampled(ref, up.width, up.height), RESAMPLED);
    await iiifImage(CMU, `${R_TEXT}/max/0/default.jpg`, { width: R.w, height: R.h }, small);
  });

  it('a size beyond maxArea → 400; just within → 200', async () => {
    const res = await iiif(CMU, 'full/1000,/0/default.jpg', {}, small); // 1000x1336
    expect(res.status).toBe(400);
    expect((res.json() as { message: string }).message).toMatch(/maxArea/);
    await iiifImage(CMU, 'full/800,/0/default.jpg', { width: 800, height: 1069 }, small);
    const up = await iiif(CMU, `${R_TEXT}/^1300,/0/default.jpg`, {}, small); // 1300x867
    expect(up.status).toBe(400);
  });
});
