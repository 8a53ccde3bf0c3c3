// joinedRegion (region-join.ts): one libvips pipeline per region of stored JPEG tiles gives the
// same pixels as the tile-by-tile path (readRegion), encoded or raw, steps aside where it
// does not apply, and turns a tile libjpeg cannot decode into DecodeError.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createCodecs } from '../../src/codecs/index.js';
import { Cancelled, DecodeError } from '../../src/errors.js';
import { openSlide } from '../../src/formats/detect.js';
import type { ImageGrid, Slide } from '../../src/formats/slide.js';
import { encodeImage } from '../../src/tiles/encode.js';
import { readRegion } from '../../src/tiles/region.js';
import { joinedRegion, jpegFrame } from '../../src/tiles/region-join.js';
import { BytesSource, openCounted } from '../support/file-source.js';
import { FIXTURES } from '../support/fixtures.js';

const codecs = createCodecs();
const LIMIT = { maxPixels: 1 << 26 };

async function open(file: string): Promise<Slide> {
  const bytes = new Uint8Array(readFileSync(path.join(FIXTURES, 'wsi', file)));
  return openSlide(new BytesSource(bytes, path.basename(file)));
}

describe('joinedRegion', () => {
  it.each(['svs/CMU-1-Small-Region.svs', 'generated/pyramid-jpeg.tif'])(
    '%s: raw pixels equal the tile-by-tile read, and so do the decoded JPEG and PNG',
    async (file) => {
      const slide = await open(file);
      const grid = slide.levels[0].grid as ImageGrid;
      const { tileWidth: tw, tileHeight: th } = grid;
      for (const [x, y, w, h] of [
        [5, 7, 100, 60], // inside one tile
        [tw - 30, th - 20, 256, 256], // 2x2 tiles
        [tw, 0, tw, th], // exactly one tile
        [tw - 1, th + 3, 2 * tw + 2, 40], // 3 tiles across
        [grid.width - 50, grid.height - 40, 50, 40], // the level's corner (padded edge tiles)
      ]) {
        const joined = await joinedRegion(grid, x, y, w, h, 'raw', LIMIT);
        expect(joined, `${x},${y} ${w}x${h}`).toBeDefined();
        const reference = await readRegion(slide, codecs, 0, x, y, w, h);
        expect(joined!.length).toBe(w * h * 3);
        expect(Buffer.compare(joined!, Buffer.from(reference.data)), `${x},${y} ${w}x${h}`).toBe(0);
        for (const options of [
          { format: 'jpg' as const, quality: 80, optimiseCoding: false },
          { format: 'png' as const, quality: 80 },
        ]) {
          // The same pixels once decoded (a PNG from JPEG input also carries a pHYs chunk).
          const encoded = await joinedRegion(grid, x, y, w, h, options, LIMIT);
          const pixels = (image: Buffer) => sharp(image).raw().toBuffer();
          const expected = await pixels(await encodeImage(reference, options));
          expect(Buffer.compare(await pixels(encoded!), expected), options.format).toBe(0);
        }
      }
    },
  );

  it('steps aside outside the level, past the pixel limit and for other codecs', async () => {
    const svs = await open('svs/CMU-1-Small-Region.svs');
    const grid = svs.levels[0].grid as ImageGrid;
    expect(await joinedRegion(grid, -1, 0, 10, 10, 'raw', LIMIT)).toBeUndefined();
    expect(await joinedRegion(grid, grid.width - 5, 0, 10, 10, 'raw', LIMIT)).toBeUndefined();
    expect(await joinedRegion(grid, 0, 0, 100, 100, 'raw', { maxPixels: 99 * 100 })).toBeUndefined();
    const jp2k = await open('svs/tcga-cr-7395-01a-01-ts1.svs');
    expect(await joinedRegion(jp2k.levels[0].grid as ImageGrid, 0, 0, 10, 10, 'raw', LIMIT)).toBeUndefined();
    // Huge tiles (here claimed 2048×1024) are decoded a few at a time by the tile-by-tile path.
    expect(
      await joinedRegion({ ...grid, tileWidth: 2048, tileHeight: 1024 }, 0, 0, 10, 10, 'raw', LIMIT),
    ).toBeUndefined();
    // A sparse tile is background: left to the tile-by-tile path.
    const sparse: ImageGrid = {
      ...grid,
      readTile: (x, y) => (x === 1 ? Promise.resolve(null) : grid.readTile(x, y)),
    };
    expect(await joinedRegion(sparse, 0, 0, 2 * grid.tileWidth, 10, 'raw', LIMIT)).toBeUndefined();
  });

  it('answers DecodeError for a tile libjpeg cannot decode (its data cut off before the scan)', async () => {
    const svs = await open('svs/CMU-1-Small-Region.svs');
    const grid = svs.levels[0].grid as ImageGrid;
    const whole = (await grid.readTile(1, 0)) as Uint8Array;
    let sos = 2;
    while (!(whole[sos] === 0xff && whole[sos + 1] === 0xda)) sos++;
    const broken = Uint8Array.from([...whole.subarray(0, sos), 0xff, 0xd9]);
    const bad: ImageGrid = {
      ...grid,
      readTile: (x, y) => (x === 1 ? Promise.resolve(broken) : grid.readTile(x, y)),
    };
    await expect(joinedRegion(bad, 0, 0, 2 * grid.tileWidth, 10, 'raw', LIMIT)).rejects.toBeInstanceOf(
      DecodeError,
    );
    await expect(
      joinedRegion(bad, 0, 0, 2 * grid.tileWidth, 10, { format: 'jpg', quality: 80 }, LIMIT),
    ).rejects.toBeInstanceOf(DecodeError);
  });

  it('reads many tiles under one request signal without a listener-leak warning, and still cancels', async () => {
    // Through the io/ coalescer, as the server reads: it listens to each read's signal.
    const file = await openCounted(path.join(FIXTURES, 'wsi', 'svs/CMU-1-Small-Region.svs'));
    onTestFinished(() => file.close());
    const grid = (await openSlide(file.source)).levels[0].grid as ImageGrid;
    const [w, h] = [4 * grid.tileWidth, 3 * grid.tileHeight]; // 12 tiles: more than the default 10 listeners
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const request = new AbortController();
      const joined = await joinedRegion(grid, 0, 0, w, h, 'raw', { ...LIMIT, signal: request.signal });
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on a later tick
      expect(joined?.length).toBe(w * h * 3);
      expect(warnings.map((warning) => warning.name)).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
    // The reads' shared signal follows the request's: a client gone mid-read cancels them.
    const gone = new AbortController();
    const pending = joinedRegion(grid, 0, 0, w, h, 'raw', { ...LIMIT, signal: gone.signal });
    gone.abort(new Error('client closed the connection'));
    await expect(pending).rejects.toBeInstanceOf(Cancelled);
  });

  it('reads the frame size of a JPEG stream', () => {
    const sof = [0xff, 0xc0, 0, 17, 8, 0, 20, 0, 30, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1];
    expect(jpegFrame(Uint8Array.from([0xff, 0xd8, 0xff, 0xfe, 0, 4, 1, 2, ...sof]))).toEqual({
      width: 30,
      height: 20,
      components: 3,
    });
    expect(jpegFrame(Uint8Array.from([0xff, 0xd8, 0xff, 0xd9, 0, 0]))).toBeUndefined();
  });
});
