// The region API for ML pipelines on a real server: reads by level match OpenSlide's
// read_region references, `raw` is the same pixels as PNG, `mpp` resamples to the asked
// resolution, and every bad parameter is a typed 400.
import { copyFile, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture, FIXTURES } from '../support/fixtures.js';
import { compareRgb, loadRgb, type RgbImage } from '../support/image-compare.js';
import { request, startTestServer } from '../support/server.js';

interface ReferenceCase {
  slide: string;
  level: number;
  x: number;
  y: number;
  w: number;
  h: number;
  png: string;
}

const SLIDES: Record<string, string> = {
  'CMU-1-Small-Region.svs': 'svs/CMU-1-Small-Region.svs',
  'pyramid-jpeg.tif': 'generated/pyramid-jpeg.tif',
  'tcga-cr-7395-01a-01-ts1.svs': 'svs/tcga-cr-7395-01a-01-ts1.svs',
  'cog.tif': 'cog/cog.tif',
};
const manifest = JSON.parse(await readFile(path.join(FIXTURES, 'reference/manifest.json'), 'utf8')) as (
  ReferenceCase | { level_dimensions: unknown }
)[];
const CASES = manifest.filter((m): m is ReferenceCase => 'png' in m && m.slide in SLIDES);

let server: RunningServer;
let small: RunningServer;

beforeAll(async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-region-'));
  for (const [name, file] of Object.entries(SLIDES))
    await copyFile(fixture(`wsi/${file}`), path.join(dir, name));
  server = await startTestServer(dir);
  small = await startTestServer(dir, ['--max-region-pixels', '65536']);
});

afterAll(async () => {
  await server?.close();
  await small?.close();
});

async function rgb(body: Buffer): Promise<RgbImage> {
  const { data, info } = await sharp(body).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

describe('GET /slides/{id}/region by level', () => {
  it.each(CASES.map((c) => [`${c.slide} L${c.level} ${c.x},${c.y} ${c.w}x${c.h}`, c] as const))(
    'matches OpenSlide: %s',
    async (_name, c) => {
      const res = await request(
        server,
        `/slides/${c.slide}/region?x=${c.x}&y=${c.y}&width=${c.w}&height=${c.h}&level=${c.level}`,
      );
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('image/png');
      expect(res.headers.get('x-region-level')).toBe(String(c.level));
      const diff = compareRgb(await rgb(res.body), await loadRgb(path.join(FIXTURES, 'reference', c.png)));
      expect(Math.max(...diff.mad)).toBeLessThanOrEqual(2);
      expect(diff.p99).toBeLessThanOrEqual(16);
    },
  );

  it('raw is interleaved RGB8 with its size in headers, the same pixels as PNG', async () => {
    const query = 'x=910&y=1333&width=40&height=30&level=0';
    const raw = await request(server, `/slides/CMU-1-Small-Region.svs/region?${query}&format=raw`);
    expect(raw.status).toBe(200);
    expect(raw.headers.get('content-type')).toBe('application/octet-stream');
    expect(raw.headers.get('x-region-width')).toBe('40');
    expect(raw.headers.get('x-region-height')).toBe('30');
    expect(raw.headers.get('x-region-channels')).toBe('3');
    expect(raw.body.length).toBe(40 * 30 * 3);
    const png = await rgb((await request(server, `/slides/CMU-1-Small-Region.svs/region?${query}`)).body);
    expect(Buffer.from(png.data).equals(raw.body)).toBe(true);
  });

  it('fills the area outside the slide with the background, like OpenSlide', async () => {
    const res = await request(
      server,
      '/slides/CMU-1-Small-Region.svs/region?x=2200&y=-10&width=40&height=20&format=raw',
    );
    expect(res.status).toBe(200);
    const px = (x: number, y: number) => [...res.body.subarray((y * 40 + x) * 3, (y * 40 + x) * 3 + 3)];
    expect(px(39, 15)).toEqual([255, 255, 255]); // right of the slide
    expect(px(5, 2)).toEqual([255, 255, 255]); // above it
  });

  it('encodes jpg and webp on request', async () => {
    for (const [format, type] of [
      ['jpg', 'image/jpeg'],
      ['webp', 'image/webp'],
    ]) {
      const res = await request(
        server,
        `/slides/pyramid-jpeg.tif/region?x=0&y=0&width=64&height=48&level=1&format=${format}&quality=90`,
      );
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe(type);
      expect(await sharp(res.body).metadata()).toMatchObject({ width: 64, height: 48 });
    }
  });
});

describe('GET /slides/{id}/region by mpp', () => {
  it('at a level’s own mpp, gives that level’s pixels', async () => {
    // CMU-1 has 0.499 µm/px at level 0; its synthesised level 1 (downsample 1.9997) has 0.9978.
    const meta = (await request(server, '/slides/CMU-1-Small-Region.svs')).json() as {
      levels: { downsample: number }[];
    };
    const mpp = (0.499 * meta.levels[1].downsample).toFixed(6);
    const res = await request(
      server,
      `/slides/CMU-1-Small-Region.svs/region?x=800&y=1200&width=200&height=150&mpp=${mpp}`,
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('x-region-mpp')).toBe(String(Number(mpp)));
    const image = await rgb(res.body);
    expect([image.width, image.height]).toEqual([200, 150]);
    const level1 = await request(
      server,
      '/slides/CMU-1-Small-Region.svs/region?x=800&y=1200&width=200&height=150&level=1',
    );
    // The level read places the level at OpenSlide's sub-pixel origin (400.07, 600.1), a slight
    // bilinear blur; a one-pixel shift would be ~16.
    const diff = compareRgb(image, await rgb(level1.body));
    expect(Math.max(...diff.mad)).toBeLessThanOrEqual(4);
  });

  it('between levels, resamples the same area to the asked size', async () => {
    // 1.497 µm/px = 3x level 0: read from level 1 and resampled; compared with level 0 reduced
    // by sharp (another filter chain, so a loose bound that a shifted or wrong area still fails).
    const res = await request(
      server,
      '/slides/CMU-1-Small-Region.svs/region?x=600&y=900&width=200&height=150&mpp=1.497',
    );
    expect(res.status).toBe(200);
    const image = await rgb(res.body);
    expect([image.width, image.height]).toEqual([200, 150]);
    const full = await request(
      server,
      '/slides/CMU-1-Small-Region.svs/region?x=600&y=900&width=600&height=450&level=0',
    );
    const reduced = await rgb(
      await sharp(full.body).resize(200, 150, { kernel: 'lanczos3' }).png().toBuffer(),
    );
    const diff = compareRgb(image, reduced);
    expect(Math.max(...diff.mad)).toBeLessThanOrEqual(8);
    const shifted = await rgb(
      await sharp(
        (
          await request(
            server,
            '/slides/CMU-1-Small-Region.svs/region?x=609&y=900&width=600&height=450&level=0',
          )
        ).body,
      )
        .resize(200, 150, { kernel: 'lanczos3' })
        .png()
        .toBuffer(),
    );
    expect(Math.max(...compareRgb(image, shifted).mad)).toBeGreaterThan(Math.max(...diff.mad));
  });

  it('refuses mpp on a slide that has none, and mpp together with level', async () => {
    const none = await request(server, '/slides/cog.tif/region?x=0&y=0&width=10&height=10&mpp=1');
    expect(none.status).toBe(400);
    expect(none.json()).toMatchObject({ error: 'bad_request', status: 400 });
    expect(String((none.json() as { message: string }).message)).toMatch(/microns-per-pixel/);
    const both = await request(
      server,
      '/slides/CMU-1-Small-Region.svs/region?x=0&y=0&width=10&height=10&mpp=1&level=0',
    );
    expect(both.status).toBe(400);
  });
});

describe('bad region requests', () => {
  it.each([
    ['missing x', 'y=0&width=10&height=10', 'bad_request'],
    ['zero width', 'x=0&y=0&width=0&height=10', 'bad_request'],
    ['non-numeric y', 'x=0&y=abc&width=10&height=10', 'bad_request'],
    ['level past the pyramid', 'x=0&y=0&width=10&height=10&level=9', 'invalid_level'],
    ['negative level', 'x=0&y=0&width=10&height=10&level=-1', 'invalid_level'],
    ['unknown format', 'x=0&y=0&width=10&height=10&format=gif', 'invalid_format'],
    ['bad quality', 'x=0&y=0&width=10&height=10&format=jpg&quality=0', 'invalid_quality'],
    ['bad mpp', 'x=0&y=0&width=10&height=10&mpp=-2', 'bad_request'],
  ])('%s → 400 %s', async (_name, query, code) => {
    const res = await request(server, `/slides/pyramid-jpeg.tif/region?${query}`);
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ error: code, status: 400 });
  });

  it('refuses a region larger than --max-region-pixels before reading anything', async () => {
    const res = await request(small, '/slides/pyramid-jpeg.tif/region?x=0&y=0&width=300&height=300');
    expect(res.status).toBe(400);
    expect(String((res.json() as { message: string }).message)).toMatch(/max-region-pixels/);
    expect(
      (await request(small, '/slides/pyramid-jpeg.tif/region?x=0&y=0&width=256&height=256')).status,
    ).toBe(200);
  });

  it('404s an unknown slide', async () => {
    const res = await request(server, '/slides/nope.svs/region?x=0&y=0&width=10&height=10');
    expect(res.status).toBe(404);
    expect(res.json()).toMatchObject({ error: 'not_found' });
  });
});
