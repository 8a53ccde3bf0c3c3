// Hamamatsu NDPI: the real fixture against OpenSlide's metadata, tiles cut at restart intervals
// (standalone JPEGs, pixel-identical to decoding the level's whole JPEG), synthetic slides for
// what the fixture lacks (4:2:0, intervals narrower than a row, no McuStarts, McuStarts high
// bytes, offsets past 4 GiB, frames over 65 535 pixels), the read budget, and corruption.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { createCodecs, prepareJpeg } from '../../src/codecs/index.js';
import { CorruptFile, DecodeError, MedStreamError, UnsupportedFormat } from '../../src/errors.js';
import { openSlide } from '../../src/formats/detect.js';
import type { ImageGrid, Slide } from '../../src/formats/slide.js';
import { readRegion } from '../../src/tiles/region.js';
import { BytesSource, openCounted } from '../support/file-source.js';
import { FIXTURES, fixture } from '../support/fixtures.js';
import { T } from '../support/tiff-writer.js';
import { NdpiWriter, writeLevel, type SynthLevelSpec } from './ndpi-synth.js';

const FIXTURE = fixture('wsi/ndpi/test3-DAPI-2.ndpi');
const fixtureBytes = new Uint8Array(readFileSync(FIXTURE));
const codecs = createCodecs({ workers: 1 });
afterAll(() => codecs.close());

interface ManifestSlide {
  slide: string;
  properties: Record<string, string>;
  level_dimensions: [number, number][];
  level_downsamples: number[];
  associated_images: string[];
}
const expected = (
  JSON.parse(readFileSync(path.join(FIXTURES, 'reference/manifest.json'), 'utf8')) as ManifestSlide[]
).find((entry) => entry.slide === 'test3-DAPI-2.ndpi' && 'level_dimensions' in entry) as ManifestSlide;

const openBytes = (bytes: Uint8Array, key = 'slide.ndpi'): Promise<Slide> =>
  openSlide(new BytesSource(bytes, key));

describe('test3-DAPI-2.ndpi', () => {
  it('has OpenSlide’s levels, downsamples, MPP, objective power, vendor and associated images', async () => {
    const file = await openCounted(FIXTURE);
    try {
      const slide = await openSlide(file.source);
      const open = file.counter.snapshot();
      const props = expected.properties;
      expect(slide.format).toBe(props['openslide.vendor']);
      expect(slide.properties.vendor).toBe('hamamatsu');
      expect(slide.levels.map((l) => [l.width, l.height])).toEqual(expected.level_dimensions);
      slide.levels.forEach((level, i) =>
        expect(level.downsample).toBeCloseTo(expected.level_downsamples[i], 9),
      );
      // 4 JPEG levels; OpenSlide's 1/2, 1/4 and 1/8 scales of the last are synthesised.
      expect(slide.levels.map((l) => l.grid !== null)).toEqual([true, true, true, true, false, false, false]);
      expect(slide.properties.mpp_x).toBeCloseTo(Number(props['openslide.mpp-x']), 12);
      expect(slide.properties.mpp_y).toBeCloseTo(Number(props['openslide.mpp-y']), 12);
      expect(slide.properties.objective_power).toBe(Number(props['openslide.objective-power']));
      expect([...slide.associated.keys()]).toEqual(expected.associated_images);
      const raw = slide.properties.raw;
      expect(raw['hamamatsu.SourceLens']).toBe('40');
      expect(raw['hamamatsu.XOffsetFromSlideCentre']).toBe('12538720');
      expect(raw['hamamatsu.Product']).toBe('C9600-12');
      expect(raw['tiff.Make']).toBe('Hamamatsu');
      expect(raw['tiff.ResolutionUnit']).toBe('centimeter');
      // Header, IFD 0's window, then the last 696 KiB (within TAIL_ALLOWANCE of the end) with
      // the five other directories: three reads (seven before the tail allowance), never the
      // level data.
      expect(open.requests).toBe(3);
      expect(open.bytes).toBeLessThanOrEqual(1024 * 1024 + 64 * 1024);
    } finally {
      await file.close();
    }
  });

  it('cuts tiles that are standalone JPEGs, passed through unchanged, equal to decoding the whole level', async () => {
    const slide = await openBytes(fixtureBytes);
    for (const level of slide.levels.slice(0, 4)) {
      const grid = level.grid as ImageGrid;
      // The level's whole JPEG (one strip) decoded by libvips is the oracle.
      const whole = await sharp(await wholeLevelJpeg(level.index))
        .raw()
        .toBuffer({ resolveWithObject: true });
      expect([whole.info.width, whole.info.height]).toEqual([grid.width, grid.height]);
      for (const [tx, ty] of [
        [0, 0],
        [0, 1],
        [grid.tilesX - 1, grid.tilesY - 1],
      ] as const) {
        const tile = (await grid.readTile(tx, ty)) as Uint8Array;
        expect([tile[0], tile[1], tile.at(-2), tile.at(-1)]).toEqual([0xff, 0xd8, 0xff, 0xd9]);
        expect(prepareJpeg(tile, grid.encoding)).toBe(tile);
        const decoded = await codecs.decodeTile(tile, grid.encoding, grid.tileWidth, grid.tileHeight);
        const w = Math.min(grid.tileWidth, grid.width - tx * grid.tileWidth);
        const h = Math.min(grid.tileHeight, grid.height - ty * grid.tileHeight);
        expect([decoded.width, decoded.height]).toEqual([w, h]);
        for (let y = 0; y < h; y++) {
          const from = ((ty * grid.tileHeight + y) * grid.width + tx * grid.tileWidth) * 3;
          const row = whole.data.subarray(from, from + w * 3);
          if (!row.equals(decoded.data.subarray(y * w * 3, (y + 1) * w * 3))) {
            expect.fail(`level ${level.index} tile (${tx}, ${ty}) row ${y} differs from the whole decode`);
          }
        }
      }
    }
  });

  it('serves the macro image (SourceLens -1) whole', async () => {
    const slide = await openBytes(fixtureBytes);
    const macro = slide.associated.get('macro') as ImageGrid;
    expect([macro.width, macro.height, macro.tilesX, macro.tilesY]).toEqual([1188, 406, 1, 1]);
    const decoded = await codecs.decodeTile(
      (await macro.readTile(0, 0)) as Uint8Array,
      macro.encoding,
      1188,
      406,
    );
    expect([decoded.width, decoded.height]).toEqual([1188, 406]);
  });

  it('falls back to scanning for restart markers when McuStarts is missing, with the same tiles', async () => {
    const slide = await openBytes(fixtureBytes);
    const scanned = await openBytes(withoutTag(fixtureBytes, 65426));
    for (const level of [0, 3]) {
      const a = slide.levels[level].grid as ImageGrid;
      const b = scanned.levels[level].grid as ImageGrid;
      for (const [x, y] of [
        [0, b.tilesY - 1],
        [0, 0],
        [0, 1],
      ])
        expect(Buffer.from((await b.readTile(x, y)) as Uint8Array)).toEqual(
          Buffer.from((await a.readTile(x, y)) as Uint8Array),
        );
    }
  });
});

/** The fixture's level `index` strip: its whole JPEG. */
async function wholeLevelJpeg(index: number): Promise<Buffer> {
  const { ifds } = await directories(fixtureBytes);
  const { offset, count } = { offset: ifds[index].get(273) as number, count: ifds[index].get(279) as number };
  return Buffer.from(fixtureBytes.subarray(offset, offset + count));
}

/** Inline values (first 4 bytes) and value offsets of each fixture directory's tags. */
async function directories(
  bytes: Uint8Array,
): Promise<{ ifds: Map<number, number>[]; at: Map<number, number>[] }> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ifds: Map<number, number>[] = [];
  const at: Map<number, number>[] = [];
  let offset = Number(view.getBigUint64(4, true));
  while (offset !== 0) {
    const n = view.getUint16(offset, true);
    const values = new Map<number, number>();
    const where = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const p = offset + 2 + i * 12;
      values.set(view.getUint16(p, true), view.getUint32(p + 8, true));
      where.set(view.getUint16(p, true), p);
    }
    ifds.push(values);
    at.push(where);
    offset = Number(view.getBigUint64(offset + 2 + n * 12, true));
  }
  return { ifds, at };
}

/** A copy with `tag` renamed (to an unused private tag) in every directory. */
function withoutTag(bytes: Uint8Array, tag: number): Uint8Array {
  const copy = bytes.slice();
  const view = new DataView(copy.buffer);
  let offset = Number(view.getBigUint64(4, true));
  while (offset !== 0) {
    const n = view.getUint16(offset, true);
    for (let i = 0; i < n; i++)
      if (view.getUint16(offset + 2 + i * 12, true) === tag) view.setUint16(offset + 2 + i * 12, 65000, true);
    offset = Number(view.getBigUint64(offset + 2 + n * 12, true));
  }
  return copy;
}

const value = (i: number): number => 16 + ((i * 37) % 220);

function synthSlide(levels: SynthLevelSpec[], options: { macro?: boolean } = {}): Uint8Array {
  const writer = new NdpiWriter();
  for (const spec of levels) writeLevel(writer, spec, 20_000);
  if (options.macro) writeLevel(writer, { width: 300, height: 100, restartInterval: 0, lens: -1 }, 1000);
  return writer.toBytes();
}

/** Checks a level's pixels against the flat colour of each interval (MCU row-major). */
async function expectIntervals(
  slide: Slide,
  level: number,
  mcu: number,
  intervalWidth: number,
  across: number,
) {
  const { width, height } = slide.levels[level];
  const image = await readRegion(slide, codecs, level, 0, 0, width, height);
  for (let y = 0; y < height; y += 3) {
    for (let x = 0; x < width; x += 5) {
      const i = Math.floor(y / mcu) * across + Math.floor(x / intervalWidth);
      if (image.data[(y * width + x) * 3] !== value(i))
        expect.fail(`pixel (${x}, ${y}) is not interval ${i}'s`);
    }
  }
}

describe('synthetic NDPI', () => {
  // 4:2:0 (16x16 MCUs), restart every 3 MCUs: 21 intervals of 48 px per row; 1000 px is not a
  // whole number of MCUs, so the last interval of each row and the last row are partial.
  const base: SynthLevelSpec = {
    width: 1000,
    height: 1000,
    sampling: [2, 2],
    restartInterval: 3,
    value,
    lens: 20,
  };

  it.each(['low', 'high', 'none'] as const)(
    'cuts intervals narrower than a row (McuStarts: %s)',
    async (mode) => {
      const slide = await openBytes(synthSlide([{ ...base, mcuStarts: mode }], { macro: true }));
      const grid = slide.levels[0].grid as ImageGrid;
      expect([grid.tileWidth, grid.tileHeight, grid.tilesX, grid.tilesY]).toEqual([480, 544, 3, 2]);
      await expectIntervals(slide, 0, 16, 48, 21);
      // The right-hand edge tile holds one interval and says so in its frame.
      const edge = (await grid.readTile(2, 1)) as Uint8Array;
      expect((await sharp(edge).metadata()).width).toBe(40);
      expect([...slide.associated.keys()]).toEqual(['macro']);
    },
  );

  it('reads levels wider than a JPEG frame can say (> 65 535 px), one interval row at a time', async () => {
    const wide: SynthLevelSpec = {
      width: 70_000,
      height: 40,
      components: 1,
      restartInterval: 250,
      value,
      lens: 40,
    };
    const slide = await openBytes(
      synthSlide([wide, { ...wide, width: 1000, height: 20, restartInterval: 5, lens: 10 }]),
    );
    const grid = slide.levels[0].grid as ImageGrid;
    expect([grid.tileWidth, grid.tileHeight]).toEqual([2000, 40]);
    const image = await readRegion(slide, codecs, 0, 65_990, 0, 4000, 40);
    for (let x = 0; x < 4000; x += 7) {
      expect(image.data[(17 * 4000 + x) * 3]).toBe(value(2 * 35 + Math.floor((65_990 + x) / 2000)));
    }
  });

  it('rejects what no tile can be cut from, with UnsupportedFormat', async () => {
    // 13 MCUs per row is no whole number of 3-MCU intervals.
    await expect(openBytes(synthSlide([{ ...base, width: 200 }]))).rejects.toThrow(UnsupportedFormat);
  });
});

describe('NDPI past 4 GiB (sparse file)', () => {
  it('reads 64-bit directory, strip and McuStarts offsets; open costs a bounded number of reads', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-ndpi-'));
    try {
      const writer = new NdpiWriter();
      writer.hole(4.5 * 2 ** 30);
      // Level 0: 65 536 x 16 384 gray, 128-px intervals: 1 048 576 intervals, 4 MiB of McuStarts
      // (and as much of high bytes). Only rows 1024..1087 are written, 4.25 GiB into the strip.
      const level0: SynthLevelSpec = {
        width: 65_536,
        height: 16_384,
        components: 1,
        restartInterval: 16,
        lens: 40,
        value: (i) => value(Math.floor(i / 512)),
        mcuStarts: 'high',
        rows: [1024, 1088],
        gap: { beforeRow: 1024, bytes: 4.25 * 2 ** 30 },
      };
      writeLevel(writer, level0, 40_000);
      writeLevel(
        writer,
        { ...level0, width: 4096, height: 1024, rows: undefined, gap: undefined, lens: 2.5 },
        2500,
      );
      writeLevel(writer, { width: 300, height: 100, restartInterval: 0, lens: -1 }, 1000);
      const file = path.join(dir, 'big.ndpi');
      const size = await writer.writeFile(file);
      expect(size).toBeGreaterThan(8 * 2 ** 30);

      const counted = await openCounted(file);
      try {
        const slide = await openSlide(counted.source);
        const open = counted.counter.snapshot();
        console.log(
          `sparse ${(size / 2 ** 30).toFixed(1)} GiB NDPI: open = ${open.requests} requests, ${(open.bytes / 1024).toFixed(0)} KiB`,
        );
        expect(open.requests).toBeLessThanOrEqual(6);
        expect(open.bytes).toBeLessThanOrEqual(512 * 1024);
        expect(slide.levels.map((l) => l.width)).toEqual([
          65_536, 32_768, 16_384, 8192, 4096, 2048, 1024, 512,
        ]);
        expect(slide.properties.mpp_x).toBeCloseTo(0.25, 12);
        const grid = slide.levels[0].grid as ImageGrid;
        expect([grid.tileWidth, grid.tileHeight]).toEqual([512, 512]);

        counted.counter.reset();
        const tile = (await grid.readTile(64, 16)) as Uint8Array;
        const cold = counted.counter.snapshot();
        const decoded = await codecs.decodeTile(tile, grid.encoding, 512, 512);
        expect(decoded.data[0]).toBe(value(1024));
        expect(decoded.data[511 * 512]).toBe(value(1087));
        // The tile's 64 MCU rows have their McuStarts entries 2 KiB apart: they span 126 KiB,
        // at most 3 blocks of McuStarts and 3 of its high bytes; then the tile's bytes.
        expect(cold.requests).toBeLessThanOrEqual(7);
        // (The coalescer merges the 64 row runs, 5 KiB apart, into one read of their span.)
        expect(cold.bytes).toBeLessThanOrEqual(1024 * 1024);
        counted.counter.reset();
        await grid.readTile(65, 16);
        expect(counted.counter.snapshot().requests).toBe(1);
        expect(slide.associated.has('macro')).toBe(true);
      } finally {
        await counted.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('corrupt NDPI', () => {
  const TIME_LIMIT_MS = 2000;

  async function outcome(bytes: Uint8Array, tiles: boolean): Promise<unknown> {
    try {
      const slide = await openBytes(bytes);
      if (!tiles) return slide;
      for (const grid of [
        ...slide.levels.flatMap((l) => (l.grid ? [l.grid] : [])),
        ...slide.associated.values(),
      ]) {
        for (const [x, y] of [
          [0, 0],
          [grid.tilesX - 1, grid.tilesY - 1],
        ]) {
          const tile = await grid.readTile(x, y);
          if (tile) await codecs.decodeTile(tile, grid.encoding, grid.tileWidth, grid.tileHeight);
        }
      }
      return slide;
    } catch (error) {
      return error;
    }
  }

  it('truncated at any point: a typed error or a partial slide, quickly', async () => {
    const cuts = [
      4,
      11,
      100,
      4300,
      100_000,
      2_067_400,
      2_067_700,
      2_068_000,
      3_000_000,
      3_543_900,
      fixtureBytes.length - 1,
    ];
    for (const cut of cuts) {
      const started = Date.now();
      const result = await outcome(fixtureBytes.subarray(0, cut), true);
      if (!(result instanceof MedStreamError) && result !== undefined && !('levels' in (result as object))) {
        expect.fail(`cut at ${cut}: untyped ${String(result)}`);
      }
      expect(Date.now() - started).toBeLessThan(TIME_LIMIT_MS);
    }
  });

  it('a bad or missing restart marker is a DecodeError, with McuStarts and when scanning', async () => {
    const { ifds } = await directories(fixtureBytes);
    const strip = ifds[0].get(273) as number;
    const mcuStartsAt = ifds[0].get(65426) as number;
    const start5 = new DataView(fixtureBytes.buffer, fixtureBytes.byteOffset).getUint32(
      mcuStartsAt + 5 * 4,
      true,
    );
    for (const replacement of [0xd5, 0x00]) {
      const bad = fixtureBytes.slice();
      bad[strip + start5 - 1] = replacement; // RST4 before interval 5: RST5, or no marker at all
      for (const bytes of [bad, withoutTag(bad, 65426)]) {
        const grid = (await openBytes(bytes)).levels[0].grid as ImageGrid;
        await expect(grid.readTile(0, 0)).rejects.toThrow(DecodeError);
      }
    }
  });

  it('McuStarts past the end of the JPEG is CorruptFile; a wrong JPEG in a level is CorruptFile', async () => {
    const { ifds } = await directories(fixtureBytes);
    const bad = fixtureBytes.slice();
    const view = new DataView(bad.buffer);
    view.setUint32((ifds[0].get(65426) as number) + 3 * 4, 0x7fffffff, true);
    await expect(((await openBytes(bad)).levels[0].grid as ImageGrid).readTile(0, 0)).rejects.toThrow(
      CorruptFile,
    );

    const wrong = fixtureBytes.slice();
    const level1 = ifds[1].get(273) as number;
    // Level 1's SOF says 1984 wide; make it 1985 (the SOF is 4 segments after SOI).
    const sof = Buffer.from(wrong.subarray(level1, level1 + 800)).indexOf(Buffer.from([0xff, 0xc0]));
    wrong[level1 + sof + 8] += 1;
    await expect(openBytes(wrong)).rejects.toThrow(/JPEG dimension mismatch/);
    const notJpeg = fixtureBytes.slice();
    notJpeg.fill(0x42, level1, level1 + 16);
    await expect(openBytes(notJpeg)).rejects.toThrow(CorruptFile);
  });

  it('McuStarts outside the file falls back to scanning', async () => {
    const { at } = await directories(fixtureBytes);
    const bad = fixtureBytes.slice();
    new DataView(bad.buffer).setUint32((at[0].get(65426) as number) + 8, 0xfffffff0, true);
    const grid = (await openBytes(bad)).levels[0].grid as ImageGrid;
    const good = (await openBytes(fixtureBytes)).levels[0].grid as ImageGrid;
    expect(Buffer.from((await grid.readTile(0, 3)) as Uint8Array)).toEqual(
      Buffer.from((await good.readTile(0, 3)) as Uint8Array),
    );
  });

  it('no restart markers where DRI promises them: DecodeError when scanning, not a hang', async () => {
    const bytes = synthSlide([
      { width: 64, height: 64, components: 1, restartInterval: 2, value, lens: 1, mcuStarts: 'none' },
    ]);
    // Turn every RSTn into a stuffed 0x00, so the data has no markers at all.
    const copy = bytes.slice();
    for (let i = 0; i + 1 < copy.length; i++)
      if (copy[i] === 0xff && copy[i + 1] >= 0xd0 && copy[i + 1] <= 0xd7) copy[i + 1] = 0;
    const grid = (await openBytes(copy)).levels[0].grid as ImageGrid;
    await expect(grid.readTile(0, 0)).rejects.toThrow(DecodeError);
    expect(T.LONG).toBe(4);
  });
});
