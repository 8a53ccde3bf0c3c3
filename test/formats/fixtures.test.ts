import { readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { MedStreamError, UnsupportedFormat } from '../../src/errors.js';
import { openSlide } from '../../src/formats/detect.js';
import type { Slide } from '../../src/formats/slide.js';
import { TAIL_ALLOWANCE } from '../../src/formats/tiff/tiff-file.js';
import { openCounted, type CountedFile } from '../support/file-source.js';
import { FIXTURES, fixture } from '../support/fixtures.js';

interface ManifestSlide {
  slide: string;
  properties: Record<string, string>;
  level_dimensions: [number, number][];
  level_downsamples: number[];
  associated_images: string[];
}

const manifest = (
  JSON.parse(readFileSync(path.join(FIXTURES, 'reference/manifest.json'), 'utf8')) as Record<
    string,
    unknown
  >[]
).filter((entry) => !('png' in entry)) as unknown as ManifestSlide[];

const TIFF_FAMILY: Record<string, string> = {
  'CMU-1-Small-Region.svs': 'wsi/svs/CMU-1-Small-Region.svs',
  'tcga-cr-7395-01a-01-ts1.svs': 'wsi/svs/tcga-cr-7395-01a-01-ts1.svs',
  'small.svs': 'wsi/openslide/small.svs',
  'boxes.tiff': 'wsi/openslide/boxes.tiff',
  'pyramid-jpeg.tif': 'wsi/generated/pyramid-jpeg.tif',
  'pyramid-jpeg-bigtiff.tif': 'wsi/generated/pyramid-jpeg-bigtiff.tif',
  'cog.tif': 'wsi/cog/cog.tif',
};

/**
 * MPP a generic TIFF's resolution tags give (OpenSlide 3.4.1's generic-tiff reports none):
 * pyramid-jpeg* were written by libvips from CMU-1-Small-Region (0.499 µm), boxes.tiff says
 * 72 dpi, cog.tif has no resolution tags.
 */
const GENERIC_MPP: Record<string, number | undefined> = {
  'boxes.tiff': 10_000 / (72 / 2.54), // 72 dpi written as pixels per centimetre
  'pyramid-jpeg.tif': 0.499,
  'pyramid-jpeg-bigtiff.tif': 0.499,
  'cog.tif': undefined,
};

/**
 * Range requests and bytes that opening costs with a 64 KiB block cache: the goal is <= 2
 * requests and <= 512 KiB of windows, plus at most one exact read of the file's last
 * `TAIL_ALLOWANCE` bytes when a directory lies there (CMU-1-Small-Region.svs and the libvips
 * pyramids: header, then the tail). tcga's header and directories lie in three places more
 * than 400 KiB apart (IFD 0 at 2.6 MiB, IFD 1 at 3.0 MiB, IFD 2 near the end), so it needs three.
 */
const MAX_OPEN_REQUESTS: Record<string, number> = {
  'tcga-cr-7395-01a-01-ts1.svs': 3,
  'ome-pyramid-subifd.ome.tif': 3,
};

const opened: CountedFile[] = [];
afterAll(async () => {
  await Promise.all(opened.map((file) => file.close()));
});

async function open(relative: string): Promise<{ slide: Slide; file: CountedFile }> {
  const file = await openCounted(fixture(relative));
  opened.push(file);
  return { slide: await openSlide(file.source), file };
}

describe.each(manifest.filter((entry) => entry.slide in TIFF_FAMILY))('$slide', (expected) => {
  it('has OpenSlide’s levels, downsamples, tile sizes and vendor', async () => {
    const { slide } = await open(TIFF_FAMILY[expected.slide]);
    const props = expected.properties;
    expect(slide.format).toBe(props['openslide.vendor']);
    expect(slide.properties.vendor).toBe(props['openslide.vendor']);
    const native = slide.levels.filter((level) => level.grid !== null);
    expect(native.map((l) => [l.width, l.height])).toEqual(expected.level_dimensions);
    native.forEach((level, i) => {
      expect(level.index).toBe(i);
      expect(level.downsample).toBeCloseTo(expected.level_downsamples[i], 9);
      expect(level.tileWidth).toBe(Number(props[`openslide.level[${i}].tile-width`]));
      expect(level.tileHeight).toBe(Number(props[`openslide.level[${i}].tile-height`]));
      expect(level.tilesX).toBe(Math.ceil(level.width / level.tileWidth));
      expect(level.grid?.tilesY).toBe(Math.ceil(level.height / level.tileHeight));
    });
    // Synthesised levels come after the native ones.
    expect(slide.levels.slice(0, native.length)).toEqual(native);
    expect([slide.width, slide.height]).toEqual(expected.level_dimensions[0]);
  });

  it('has OpenSlide’s MPP, objective power, comment and associated images', async () => {
    const { slide } = await open(TIFF_FAMILY[expected.slide]);
    const props = expected.properties;
    if (props['openslide.vendor'] === 'generic-tiff') {
      const mpp = GENERIC_MPP[expected.slide];
      if (mpp === undefined) expect(slide.properties.mpp_x).toBeUndefined();
      else expect(slide.properties.mpp_x! / mpp).toBeCloseTo(1, 6);
    } else if (props['openslide.mpp-x'] === undefined) {
      expect(slide.properties.mpp_x).toBeUndefined();
    } else {
      expect(slide.properties.mpp_x).toBeCloseTo(Number(props['openslide.mpp-x']), 9);
      expect(slide.properties.mpp_y).toBeCloseTo(Number(props['openslide.mpp-y']), 9);
    }
    const power = props['openslide.objective-power'];
    expect(slide.properties.objective_power).toBe(power === undefined ? undefined : Number(power));
    expect(slide.properties.raw['tiff.ImageDescription']).toBe(props['openslide.comment']);
    expect([...slide.associated.keys()].sort()).toEqual([...expected.associated_images].sort());
    expect(slide.properties.background_color).toBe('FFFFFF');
  });

  it('opens in few small reads and reads a tile with one more', async () => {
    const { slide, file } = await open(TIFF_FAMILY[expected.slide]);
    const cost = file.counter.snapshot();
    console.info(
      `${expected.slide}: open = ${cost.requests} requests, ${(cost.bytes / 1024).toFixed(0)} KiB`,
    );
    expect(cost.bytes).toBeLessThanOrEqual(512 * 1024 + TAIL_ALLOWANCE);
    expect(cost.requests).toBeLessThanOrEqual(MAX_OPEN_REQUESTS[expected.slide] ?? 2);

    file.counter.reset();
    const grid = slide.levels[0].grid!;
    const tile = await grid.readTile(0, 0);
    expect(tile).not.toBeNull();
    expect(file.counter.requests).toBe(1);
    expect(file.counter.bytes).toBe(tile!.byteLength);
    if (grid.encoding.compression === 7) expect([tile![0], tile![1]]).toEqual([0xff, 0xd8]);
  });
});

describe('Aperio details', () => {
  it('CMU-1-Small-Region: aperio.* properties, JPEG tables, strips of the associated images', async () => {
    const { slide } = await open('wsi/svs/CMU-1-Small-Region.svs');
    const raw = slide.properties.raw;
    expect(raw['aperio.AppMag']).toBe('20');
    expect(raw['aperio.MPP']).toBe('0.4990');
    expect(raw['aperio.ScanScope ID']).toBe('CPAPERIOCS');
    // A later duplicate key wins, as in OpenSlide.
    expect(raw['aperio.OriginalWidth']).toBe('46000');
    expect(raw['aperio.Originalheight']).toBe('33014');
    const level0 = slide.levels[0].grid!;
    expect(level0.encoding).toMatchObject({
      compression: 7,
      photometric: 2,
      samplesPerPixel: 3,
      bitsPerSample: [8, 8, 8],
    });
    expect(level0.encoding.jpegTables?.byteLength).toBe(289);
    const label = slide.associated.get('label')!;
    expect(label).toMatchObject({
      width: 387,
      height: 463,
      tileWidth: 387,
      tileHeight: 7,
      tilesY: 67,
      layout: 'strips',
    });
    expect(label.encoding).toMatchObject({ compression: 5, predictor: 2 });
    const macro = slide.associated.get('macro')!;
    expect([macro.width, macro.height]).toEqual([1280, 431]);
    const thumbnail = slide.associated.get('thumbnail')!;
    expect([thumbnail.width, thumbnail.height, thumbnail.tileHeight]).toEqual([574, 768, 16]);
    const strip = await thumbnail.readTile(0, 47);
    expect(strip?.[0]).toBe(0xff);
  });

  it('CMU-1-Small-Region: synthesised levels halve down to one tile', async () => {
    const { slide } = await open('wsi/svs/CMU-1-Small-Region.svs');
    expect(slide.levels.map((l) => [l.width, l.height, l.grid === null])).toEqual([
      [2220, 2967, false],
      [1110, 1484, true],
      [555, 742, true],
      [278, 371, true],
      [139, 186, true],
    ]);
    expect(slide.levels.map((l) => l.index)).toEqual([0, 1, 2, 3, 4]);
    expect(slide.levels[4]).toMatchObject({ tileWidth: 240, tileHeight: 240, tilesX: 1, tilesY: 1 });
    expect(slide.levels[1].downsample).toBeCloseTo((2220 / 1110 + 2967 / 1484) / 2, 12);
  });

  it('small.svs already fits one tile: no synthesised level', async () => {
    const { slide } = await open('wsi/openslide/small.svs');
    expect(slide.levels).toHaveLength(1);
  });

  it('tcga: JPEG 2000 (33005) levels, JPEG thumbnail, ICC profile', async () => {
    const { slide } = await open('wsi/svs/tcga-cr-7395-01a-01-ts1.svs');
    expect(slide.levels.map((l) => l.grid?.encoding.compression)).toEqual([33005, 33005]);
    expect(slide.associated.get('thumbnail')?.encoding.compression).toBe(7);
    const icc = slide.properties.icc_profile!;
    expect(icc.byteLength).toBe(3144);
    expect(new TextDecoder().decode(icc.subarray(36, 40))).toBe('acsp');
    expect(slide.properties.raw['aperio.ICC Profile']).toBe('IEC 61966-2.1 Default RGB colour space - sRGB');
  });
});

describe('other TIFF fixtures', () => {
  it('ome-pyramid-subifd.ome.tif exposes all its SubIFD levels', async () => {
    const { slide, file } = await open('wsi/generated/ome-pyramid-subifd.ome.tif');
    const meta = await sharp(fixture('wsi/generated/ome-pyramid-subifd.ome.tif')).metadata();
    expect(slide.format).toBe('ome-tiff');
    expect(slide.levels).toHaveLength(1 + (meta.subifds ?? 0));
    expect(slide.levels.map((l) => [l.width, l.height])).toEqual([
      [2220, 2967],
      [1110, 1483],
      [555, 741],
      [277, 370],
      [138, 185],
    ]);
    expect(slide.levels.every((l) => l.grid !== null)).toBe(true);
    expect(slide.properties.mpp_x).toBeCloseTo(0.499, 9);
    expect(slide.properties.mpp_y).toBeCloseTo(0.499, 9);
    expect(slide.properties.raw['ome.Pixels.SizeC']).toBe('3');
    expect(JSON.parse(slide.properties.raw['ome.channels'])).toEqual(['Channel:0:0']);
    const cost = file.counter.snapshot();
    console.info(
      `ome-pyramid-subifd.ome.tif: open = ${cost.requests} requests, ${(cost.bytes / 1024).toFixed(0)} KiB`,
    );
    expect(cost.requests).toBeLessThanOrEqual(3);
    const tile = await slide.levels[4].grid!.readTile(0, 0);
    expect([tile![0], tile![1]]).toEqual([0xff, 0xd8]);
  });

  it('cog.tif: deflate overviews with their own tile size', async () => {
    const { slide } = await open('wsi/cog/cog.tif');
    expect(slide.levels.map((l) => l.tileWidth)).toEqual([256, 128, 128, 128, 128]);
    expect(slide.levels[0].grid!.encoding).toMatchObject({
      compression: 8,
      photometric: 1,
      samplesPerPixel: 1,
    });
  });

  it('boxes.tiff: ICC profile and tiff.* resolution properties named as OpenSlide names them', async () => {
    const { slide } = await open('wsi/openslide/boxes.tiff');
    expect(slide.properties.icc_profile?.byteLength).toBe(588);
    expect(slide.properties.raw['tiff.ResolutionUnit']).toBe('centimeter');
    expect(Number(slide.properties.raw['tiff.XResolution'])).toBeCloseTo(28.3464565, 5);
  });

  it('unopenable.tiff is rejected with UnsupportedFormat', async () => {
    const file = await openCounted(fixture('wsi/openslide/unopenable.tiff'));
    opened.push(file);
    await expect(openSlide(file.source)).rejects.toBeInstanceOf(UnsupportedFormat);
  });

  it('unreadable.svs opens; its tile comes back as bytes (decoding is the codecs’ concern)', async () => {
    const { slide } = await open('wsi/openslide/unreadable.svs');
    expect(slide.format).toBe('aperio');
    const result: Uint8Array | null | Error = await slide.levels[0]
      .grid!.readTile(0, 0)
      .catch((e: Error) => e);
    if (result instanceof Error) expect(result).toBeInstanceOf(MedStreamError);
    else expect(result?.byteLength).toBeGreaterThan(0);
  });

  it('a tile outside the grid is a BadRequest', async () => {
    const { slide } = await open('wsi/openslide/boxes.tiff');
    const grid = slide.levels[0].grid!;
    for (const [x, y] of [
      [grid.tilesX, 0],
      [0, grid.tilesY],
      [-1, 0],
      [0.5, 0],
    ]) {
      await expect(grid.readTile(x, y)).rejects.toMatchObject({ code: 'bad_request' });
    }
  });
});
