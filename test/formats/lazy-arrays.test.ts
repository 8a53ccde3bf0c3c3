// Tile offset arrays are read lazily and partially: generated BigTIFFs with a 160 000-tile level
// (1.25 MiB of offsets) open without reading that array, and a tile costs a few small reads.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSlide } from '../../src/formats/detect.js';
import { openCounted, type CountedFile } from '../support/file-source.js';
import { T, TiffWriter, tiledImageTags, type TagSpec } from '../support/tiff-writer.js';

const TILE = 256;
const TILES_ACROSS = 400; // 400 x 400 = 160 000 tiles at level 0
const OFFSETS_BYTES = TILES_ACROSS * TILES_ACROSS * 8;

let dir: string;
let jpeg: Uint8Array;
const files: CountedFile[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-lazy-'));
  jpeg = new Uint8Array(
    await sharp({ create: { width: TILE, height: TILE, channels: 3, background: '#c08040' } })
      .jpeg()
      .toBuffer(),
  );
});

afterAll(async () => {
  await Promise.all(files.map((file) => file.close()));
  await rm(dir, { recursive: true, force: true });
});

async function counted(filePath: string): Promise<CountedFile> {
  const file = await openCounted(filePath);
  files.push(file);
  return file;
}

/** Pyramid sizes in tiles across: 400, 200, 100, 50, 25, 13, 7, 4, 2, 1. */
function pyramid(): number[] {
  const out = [TILES_ACROSS];
  while (out[out.length - 1] > 1) out.push(Math.ceil(out[out.length - 1] / 2));
  return out;
}

describe('lazy tile offset arrays', () => {
  it('opens a 160 000-tile BigTIFF level (IFD, then its arrays) without reading its offsets', async () => {
    const writer = new TiffWriter({ bigTiff: true });
    const tileOffset = writer.blob(jpeg);
    for (const [index, across] of pyramid().entries()) {
      const tags = tiledImageTags({
        width: across * TILE,
        height: across * TILE,
        tile: TILE,
        tileOffset,
        tileBytes: jpeg.byteLength,
        bigTiff: true,
        photometric: 2,
        subfileType: index === 0 ? undefined : 1,
      });
      if (index === 0) {
        // Tile 1 has no bytes and tile 2 no offset: both are sparse.
        const counts = tags.find((t) => t.tag === 325)!.values as number[];
        const offsets = tags.find((t) => t.tag === 324)!.values as number[];
        counts[1] = 0;
        offsets[2] = 0;
      }
      writer.ifd({ tags });
    }
    const filePath = path.join(dir, 'many-tiles.tif');
    await writer.writeFile(filePath);

    const file = await counted(filePath);
    const slide = await openSlide(file.source);
    const open = file.counter.snapshot();
    console.info(
      `160k-tile BigTIFF: open = ${open.requests} requests, ${(open.bytes / 1024).toFixed(0)} KiB`,
    );
    expect(slide.levels).toHaveLength(pyramid().length);
    expect(slide.levels[0]).toMatchObject({ width: 102_400, height: 102_400, tilesX: 400, tilesY: 400 });
    // Ten directories, each behind the previous level's arrays: the header's block, then the
    // rest of the file from IFD 0 (within TAIL_ALLOWANCE of the end: the smaller levels'
    // arrays); the 1.25 MiB level-0 offset array is never read whole.
    expect(open.bytes).toBeLessThan(OFFSETS_BYTES);
    expect(open.requests).toBeLessThanOrEqual(2);

    // The last tile of level 0: its offset and byte count are 1.25 MiB apart, far from
    // anything read so far, so: one block of each array, then the tile itself.
    file.counter.reset();
    const grid = slide.levels[0].grid!;
    const tile = await grid.readTile(399, 399);
    expect(tile).toEqual(jpeg);
    expect(file.counter.requests).toBeLessThanOrEqual(3);
    expect(file.counter.bytes).toBeLessThanOrEqual(2 * 64 * 1024 + jpeg.byteLength);

    // Its neighbour's array entries are in the same cached blocks: only the tile is read.
    file.counter.reset();
    expect(await grid.readTile(398, 399)).toEqual(jpeg);
    expect(file.counter.snapshot()).toEqual({ requests: 1, bytes: jpeg.byteLength });

    expect(await grid.readTile(1, 0)).toBeNull();
    expect(await grid.readTile(2, 0)).toBeNull();
  });

  it('without a block cache a tile costs exactly its two array elements and its bytes', async () => {
    const writer = new TiffWriter({ bigTiff: true });
    const tileOffset = writer.blob(jpeg);
    writer.ifd({
      tags: tiledImageTags({
        width: TILES_ACROSS * TILE,
        height: TILES_ACROSS * TILE,
        tile: TILE,
        tileOffset,
        tileBytes: jpeg.byteLength,
        bigTiff: true,
      }),
    });
    const filePath = path.join(dir, 'uncached.tif');
    await writer.writeFile(filePath);
    const file = await counted(filePath);
    const slide = await openSlide(file.file);
    file.counter.reset();
    await slide.levels[0].grid!.readTile(123, 321);
    expect(file.counter.ranges.map((r) => r.bytes).sort((a, b) => a - b)).toEqual([4, 8, jpeg.byteLength]);
  });

  it('opens a sparse 4.5 GiB BigTIFF in <= 3 requests and <= 512 KiB, tiles past 4 GiB', async () => {
    const writer = new TiffWriter({ bigTiff: true });
    writer.hole(4.5 * 2 ** 30);
    const tileOffset = writer.blob(jpeg);
    expect(tileOffset).toBeGreaterThan(2 ** 32);
    // Arrays first, then every directory together at the end of the file.
    const levels: TagSpec[][] = [];
    for (const [index, across] of pyramid().entries()) {
      const n = across * across;
      const offsets = writer.blob(
        writer.encode({ tag: 324, type: T.LONG8, values: Array<number>(n).fill(tileOffset) }).bytes,
      );
      const counts = writer.blob(
        writer.encode({ tag: 325, type: T.LONG, values: Array<number>(n).fill(jpeg.byteLength) }).bytes,
      );
      const tags = tiledImageTags({
        width: across * TILE - 7,
        height: across * TILE - 3,
        tile: TILE,
        tileOffset,
        tileBytes: jpeg.byteLength,
        bigTiff: true,
        subfileType: index === 0 ? undefined : 1,
      }).filter((t) => t.tag !== 324 && t.tag !== 325);
      if (n > 1) {
        tags.push({ tag: 324, type: T.LONG8, values: [], count: n, at: offsets });
        tags.push({ tag: 325, type: T.LONG, values: [], count: n, at: counts });
      } else {
        tags.push(
          { tag: 324, type: T.LONG8, values: [tileOffset] },
          { tag: 325, type: T.LONG, values: [jpeg.byteLength] },
        );
      }
      levels.push(tags);
    }
    for (const tags of levels) writer.ifd({ tags });
    const filePath = path.join(dir, 'huge-sparse.tif');
    const size = await writer.writeFile(filePath);
    expect(size).toBeGreaterThan(2 ** 32);

    const file = await counted(filePath);
    const slide = await openSlide(file.source);
    const open = file.counter.snapshot();
    console.info(
      `4.5 GiB sparse BigTIFF: open = ${open.requests} requests, ${(open.bytes / 1024).toFixed(0)} KiB`,
    );
    expect(open.requests).toBeLessThanOrEqual(3);
    expect(open.bytes).toBeLessThanOrEqual(512 * 1024);
    expect(slide.format).toBe('generic-tiff');
    expect(slide.levels.map((l) => l.tilesX)).toEqual(pyramid());
    expect(slide.levels[0].width).toBe(TILES_ACROSS * TILE - 7);

    file.counter.reset();
    expect(await slide.levels[0].grid!.readTile(200, 100)).toEqual(jpeg);
    expect(file.counter.requests).toBeLessThanOrEqual(3);
    expect(await slide.levels.at(-1)!.grid!.readTile(0, 0)).toEqual(jpeg);
  });
});
