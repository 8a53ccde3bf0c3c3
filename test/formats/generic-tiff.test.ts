import { describe, expect, it } from 'vitest';
import { UnsupportedFormat } from '../../src/errors.js';
import { openSlide } from '../../src/formats/detect.js';
import { BytesSource } from '../support/file-source.js';
import { T, TiffWriter, tiledImageTags, type TagSpec } from '../support/tiff-writer.js';

const TILE_BYTES = new Uint8Array([0xff, 0xd8, 1, 2, 3, 0xff, 0xd9]);

function level(
  writer: TiffWriter,
  tile: number,
  width: number,
  height: number,
  subfileType?: number,
  extra: TagSpec[] = [],
): TagSpec[] {
  return tiledImageTags({
    width,
    height,
    tile: 256,
    tileOffset: tile,
    tileBytes: TILE_BYTES.byteLength,
    bigTiff: writer.bigTiff,
    subfileType,
    extra,
  });
}

function stripped(width: number, height: number, rowsPerStrip: number, offset: number): TagSpec[] {
  const strips = Math.ceil(height / rowsPerStrip);
  return [
    { tag: 256, type: T.LONG, values: [width] },
    { tag: 257, type: T.LONG, values: [height] },
    { tag: 258, type: T.SHORT, values: [8] },
    { tag: 259, type: T.SHORT, values: [1] },
    { tag: 262, type: T.SHORT, values: [1] },
    { tag: 273, type: T.LONG, values: Array<number>(strips).fill(offset) },
    { tag: 278, type: T.LONG, values: [rowsPerStrip] },
    { tag: 279, type: T.LONG, values: Array<number>(strips).fill(TILE_BYTES.byteLength) },
  ];
}

describe.each([
  { bigTiff: false, littleEndian: true },
  { bigTiff: false, littleEndian: false },
  { bigTiff: true, littleEndian: false },
])('generic TIFF (BigTIFF $bigTiff, little-endian $littleEndian)', ({ bigTiff, littleEndian }) => {
  it('takes COG overviews from the chain, skips masks and full-size pages, sorts by size', async () => {
    const writer = new TiffWriter({ bigTiff, littleEndian });
    const tile = writer.blob(TILE_BYTES);
    writer.ifd({
      tags: level(writer, tile, 3000, 2000, 0, [
        { tag: 296, type: T.SHORT, values: [3] },
        { tag: 282, type: T.RATIONAL, values: [20000, 1] },
      ]),
    });
    writer.ifd({ tags: level(writer, tile, 3000, 2000, 4) }); // mask of level 0
    writer.ifd({ tags: level(writer, tile, 750, 500, 1) }); // stored out of order
    writer.ifd({ tags: level(writer, tile, 1500, 1000, 1) });
    writer.ifd({ tags: level(writer, tile, 750, 500, 5) }); // mask of an overview
    writer.ifd({ tags: level(writer, tile, 200, 100, 0) }); // another page, not a level
    writer.ifd({ tags: level(writer, tile, 188, 125, 1) }); // a single tile
    const slide = await openSlide(new BytesSource(writer.toBytes()));
    expect(slide.format).toBe('generic-tiff');
    expect(slide.levels.map((l) => [l.width, l.height, l.tilesX, l.tilesY])).toEqual([
      [3000, 2000, 12, 8],
      [1500, 1000, 6, 4],
      [750, 500, 3, 2],
      [188, 125, 1, 1],
    ]);
    expect(slide.levels[3].downsample).toBeCloseTo((3000 / 188 + 2000 / 125) / 2, 12);
    expect(slide.properties.mpp_x).toBeCloseTo(0.5, 12);
    expect(slide.properties.mpp_y).toBeUndefined();
    expect(await slide.levels[3].grid!.readTile(0, 0)).toEqual(TILE_BYTES);
  });

  it('takes levels from SubIFDs of the first directory', async () => {
    const writer = new TiffWriter({ bigTiff, littleEndian });
    const tile = writer.blob(TILE_BYTES);
    writer.ifd({
      tags: level(writer, tile, 1024, 1024),
      subIfds: [
        { tags: level(writer, tile, 512, 512, 1) },
        { tags: level(writer, tile, 256, 256) },
        { tags: level(writer, tile, 1024, 1024, 4) },
      ],
    });
    const slide = await openSlide(new BytesSource(writer.toBytes()));
    expect(slide.levels.map((l) => l.width)).toEqual([1024, 512, 256]);
  });

  it('serves a small stripped image as a grid of strips with synthesised levels', async () => {
    const writer = new TiffWriter({ bigTiff, littleEndian });
    const strip = writer.blob(TILE_BYTES);
    writer.ifd({ tags: stripped(1000, 830, 64, strip) });
    const slide = await openSlide(new BytesSource(writer.toBytes()));
    const grid = slide.levels[0].grid!;
    expect(grid).toMatchObject({ layout: 'strips', tileWidth: 1000, tileHeight: 64, tilesX: 1, tilesY: 13 });
    expect(await grid.readTile(0, 12)).toEqual(TILE_BYTES);
    expect(slide.levels.slice(1).map((l) => [l.width, l.height, l.tileWidth, l.grid])).toEqual([
      [500, 415, 256, null],
      [250, 208, 256, null],
    ]);
  });
});

describe('generic TIFF limits', () => {
  it('refuses a stripped image over 64 Mpx', async () => {
    const writer = new TiffWriter();
    const strip = writer.blob(TILE_BYTES);
    writer.ifd({ tags: stripped(10_000, 7_000, 7_000, strip) });
    const error = await openSlide(new BytesSource(writer.toBytes())).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnsupportedFormat);
    expect((error as Error).message).toMatch(/stripped image too large/);
  });

  it('leaves an NDPI file to its own reader', async () => {
    const writer = new TiffWriter();
    const tile = writer.blob(TILE_BYTES);
    writer.ifd({ tags: [...level(writer, tile, 512, 512), { tag: 65420, type: T.LONG, values: [1] }] });
    await expect(openSlide(new BytesSource(writer.toBytes()))).rejects.toBeInstanceOf(UnsupportedFormat);
  });

  it('refuses what is not a TIFF', async () => {
    await expect(
      openSlide(new BytesSource(new TextEncoder().encode('just some text, not a slide'))),
    ).rejects.toBeInstanceOf(UnsupportedFormat);
  });
});
