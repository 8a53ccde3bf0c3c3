import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { createCodecs, decodesCleanly, prepareJpeg } from '../../src/codecs/index.js';
import { Compression, Photometric } from '../../src/codecs/types.js';
import type { TileEncoding } from '../../src/codecs/types.js';
import { DecodeError, UnsupportedFormat } from '../../src/errors.js';
import { openSlide } from '../../src/formats/detect.js';
import { openSeries } from '../../src/formats/dicom-wsi.js';
import type { Slide } from '../../src/formats/slide.js';
import { BytesSource } from '../support/file-source.js';
import { FIXTURES } from '../support/fixtures.js';
import { compareRgb, loadRgb } from '../support/image-compare.js';
import { synthJpeg } from './jpeg-synth.js';
import { readTestTiff } from './tiff-fixture.js';

const codecs = createCodecs({ workers: 1 });
afterAll(() => codecs.close());

const encoding = (photometric: number, samplesPerPixel: number, jpegTables?: Uint8Array): TileEncoding => ({
  compression: Compression.JPEG,
  photometric,
  samplesPerPixel,
  bitsPerSample: new Array<number>(samplesPerPixel).fill(8),
  sampleFormat: 1,
  planarConfiguration: 1,
  predictor: 1,
  ...(jpegTables ? { jpegTables } : {}),
});

/** Marker codes in stream order up to SOS. */
function markers(stream: Uint8Array): number[] {
  const out: number[] = [];
  let pos = 2;
  while (pos + 4 <= stream.length && stream[pos] === 0xff) {
    const marker = stream[pos + 1];
    out.push(marker);
    if (marker === 0xda) break;
    pos += 2 + ((stream[pos + 2] << 8) | stream[pos + 3]);
  }
  return out;
}

const pixel = (data: Uint8Array, i = 0): number[] => [...data.subarray(i * 3, i * 3 + 3)];

describe('prepareJpeg', () => {
  it('splices the tables after SOI and adds Adobe APP14 (transform 0) for RGB photometric', () => {
    const jpeg = synthJpeg({ width: 16, height: 16, colour: [150, 100, 180] });
    const out = prepareJpeg(jpeg.tile, encoding(Photometric.RGB, 3, jpeg.tables));
    expect([...out.subarray(0, 2)]).toEqual([0xff, 0xd8]);
    expect(markers(out)).toEqual([0xee, 0xdb, 0xc4, 0xc0, 0xda]);
    expect(Buffer.from(out.subarray(6, 11)).toString('latin1')).toBe('Adobe');
    expect(out[17]).toBe(0); // transform byte
    // SOI + APP14 (16 bytes) + tables without SOI/EOI + tile without SOI.
    expect(out.length).toBe(2 + 16 + (jpeg.tables.length - 4) + (jpeg.tile.length - 2));
    expect([...out.subarray(out.length - 2)]).toEqual([0xff, 0xd9]);
  });

  it('adds no APP14 for YCbCr photometric, and returns a complete tile unchanged', () => {
    const jpeg = synthJpeg({ width: 16, height: 16, colour: [150, 100, 180] });
    const out = prepareJpeg(jpeg.tile, encoding(Photometric.YCbCr, 3, jpeg.tables));
    expect(markers(out)).toEqual([0xdb, 0xc4, 0xc0, 0xda]);
    expect(Buffer.from(out).equals(Buffer.from(jpeg.standalone))).toBe(true);
    expect(prepareJpeg(jpeg.standalone, encoding(Photometric.YCbCr, 3))).toBe(jpeg.standalone);
  });

  it('does not add a second Adobe marker', () => {
    const jpeg = synthJpeg({ width: 16, height: 16, colour: [150, 100, 180] });
    const once = prepareJpeg(jpeg.tile, encoding(Photometric.RGB, 3, jpeg.tables));
    const twice = prepareJpeg(once, encoding(Photometric.RGB, 3));
    expect(twice).toBe(once);
  });

  it('makes the colours right for any standard decoder: RGB stays RGB, YCbCr is converted', async () => {
    const jpeg = synthJpeg({ width: 16, height: 8, colour: [150, 100, 180] });
    const asRgb = await sharp(prepareJpeg(jpeg.tile, encoding(Photometric.RGB, 3, jpeg.tables)))
      .raw()
      .toBuffer();
    expect(pixel(asRgb)).toEqual([150, 100, 180]);
    const asYcbcr = await sharp(prepareJpeg(jpeg.tile, encoding(Photometric.YCbCr, 3, jpeg.tables)))
      .raw()
      .toBuffer();
    expect(pixel(asYcbcr)).toEqual([223, 123, 100]); // JFIF YCbCr(150,100,180) -> RGB
  });

  it('rejects a tile that does not start with SOI', () => {
    expect(() => prepareJpeg(Uint8Array.of(0, 1, 2, 3, 4), encoding(Photometric.RGB, 3))).toThrow(
      DecodeError,
    );
  });

  it('builds streams that decode to the OpenSlide rendering of CMU-1-Small-Region (stored RGB)', async () => {
    const tiff = readTestTiff(path.join(FIXTURES, 'wsi/svs/CMU-1-Small-Region.svs'));
    const ifd = tiff.ifds[0];
    expect(ifd.encoding.photometric).toBe(Photometric.RGB);
    const decoded = await sharp(prepareJpeg(tiff.chunk(0, 0), ifd.encoding))
      .raw()
      .toBuffer({ resolveWithObject: true });
    const reference = await loadRgb(
      path.join(FIXTURES, 'reference/CMU-1-Small-Region.svs.L0.0_0_256x256.png'),
    );
    const crop = (data: Uint8Array, width: number): Uint8Array => {
      const out = new Uint8Array(240 * 240 * 3);
      for (let y = 0; y < 240; y++) out.set(data.subarray(y * width * 3, (y * width + 240) * 3), y * 240 * 3);
      return out;
    };
    const ours = { data: crop(decoded.data, 240), width: 240, height: 240 };
    const theirs = { data: crop(reference.data, 256), width: 240, height: 240 };
    const difference = compareRgb(ours, theirs);
    expect(Math.max(...difference.mad)).toBeLessThanOrEqual(1);
    // Without the APP14 marker the same bytes come out with visibly wrong colours.
    const tables = ifd.encoding.jpegTables as Uint8Array;
    const tile = tiff.chunk(0, 0);
    const bare = Buffer.concat([
      tile.subarray(0, 2),
      tables.subarray(2, tables.length - 2),
      tile.subarray(2),
    ]);
    const wrong = await sharp(bare).raw().toBuffer();
    expect(
      Math.max(...compareRgb({ data: crop(wrong, 240), width: 240, height: 240 }, theirs).mad),
    ).toBeGreaterThan(10);
  });
});

describe('decodesCleanly (the check before a stored tile is passed through)', () => {
  it('accepts a whole stored tile, refuses noise in its data and a tile that ends early', async () => {
    const tiff = readTestTiff(path.join(FIXTURES, 'wsi/svs/CMU-1-Small-Region.svs'));
    const tile = tiff.chunk(0, 0);
    const whole = prepareJpeg(tile, tiff.ifds[0].encoding);
    expect(await decodesCleanly(whole, 1 << 20)).toBe(true);
    // Noise in the entropy-coded data, SOI..tables..SOS and the EOI kept: libjpeg only warns.
    const noisy = whole.slice();
    for (let i = whole.length - 1200; i < whole.length - 200; i++) noisy[i] = (i * 7919) & 0xff;
    expect(await decodesCleanly(noisy, 1 << 20)).toBe(false);
    // The second half of the data replaced by EOI and zeros (a tile that ends early).
    const cut = whole.slice();
    cut.fill(0, whole.length >> 1);
    cut.set([0xff, 0xd9], whole.length >> 1);
    expect(await decodesCleanly(cut, 1 << 20)).toBe(false);
    // More pixels than allowed.
    expect(await decodesCleanly(whole, 240 * 240 - 1)).toBe(false);
  });

  it('passes the stored tiles of every real JPEG fixture, so they still pass through', async () => {
    const bytesOf = (file: string) =>
      new BytesSource(new Uint8Array(readFileSync(file)), path.basename(file));
    const dicomDir = path.join(FIXTURES, 'wsi/dicom-wsi/cmu-1-small-region');
    const slides: [string, Slide][] = [
      ['dicom-wsi', await openSeries(readdirSync(dicomDir).map((n) => bytesOf(path.join(dicomDir, n))))],
    ];
    for (const file of [
      'svs/CMU-1-Small-Region.svs',
      'ndpi/test3-DAPI-2.ndpi', // tiles cut at restart intervals
      'generated/pyramid-jpeg.tif',
      'generated/ome-pyramid-subifd.ome.tif',
      'openslide/small.svs',
    ]) {
      slides.push([file, await openSlide(bytesOf(path.join(FIXTURES, 'wsi', file)))]);
    }
    for (const [name, slide] of slides) {
      let checked = 0;
      for (const { grid } of slide.levels) {
        if (grid?.encoding.compression !== Compression.JPEG) continue;
        // The corner tiles of each level (edge tiles included).
        for (const [x, y] of [
          [0, 0],
          [grid.tilesX - 1, grid.tilesY - 1],
        ]) {
          const stored = await grid.readTile(x, y);
          if (!stored) continue;
          expect(
            await decodesCleanly(prepareJpeg(stored, grid.encoding), 1 << 26),
            `${name} (${x}, ${y})`,
          ).toBe(true);
          checked++;
        }
      }
      expect(checked, name).toBeGreaterThan(0);
    }
  });
});

describe('JPEG decoding', () => {
  it.each([
    ['4:4:4', [1, 1]],
    ['4:2:2', [2, 1]],
    ['4:2:0', [2, 2]],
  ] as const)('decodes %s YCbCr and RGB tiles with JPEGTables', async (_name, sampling) => {
    const jpeg = synthJpeg({ width: 40, height: 24, colour: [150, 100, 180], lumaSampling: sampling });
    const ycbcr = await codecs.decodeTile(jpeg.tile, encoding(Photometric.YCbCr, 3, jpeg.tables), 40, 24);
    expect([ycbcr.width, ycbcr.height, ycbcr.channels]).toEqual([40, 24, 3]);
    expect(pixel(ycbcr.data, 40 * 24 - 1)).toEqual([223, 123, 100]);
    const rgb = await codecs.decodeTile(jpeg.tile, encoding(Photometric.RGB, 3, jpeg.tables), 40, 24);
    expect(pixel(rgb.data, 40 * 24 - 1)).toEqual([150, 100, 180]);
  });

  it('decodes grayscale to one channel, inverting MinIsWhite', async () => {
    const jpeg = synthJpeg({ width: 17, height: 9, colour: [77] });
    const gray = await codecs.decodeTile(jpeg.tile, encoding(Photometric.MinIsBlack, 1, jpeg.tables), 17, 9);
    expect([gray.width, gray.height, gray.channels]).toEqual([17, 9, 1]);
    expect(gray.data.every((v) => v === 77)).toBe(true);
    const inverted = await codecs.decodeTile(
      jpeg.tile,
      encoding(Photometric.MinIsWhite, 1, jpeg.tables),
      17,
      9,
    );
    expect(inverted.data[0]).toBe(255 - 77);
  });

  it('returns stored values: an embedded ICC profile is not applied', async () => {
    const red = Buffer.alloc(16 * 16 * 3);
    for (let i = 0; i < red.length; i += 3) red[i] = 255;
    const withProfile = await sharp(red, { raw: { width: 16, height: 16, channels: 3 } })
      .withIccProfile('p3')
      .jpeg({ quality: 100, chromaSubsampling: '4:4:4' })
      .toBuffer();
    const image = await codecs.decodeTile(withProfile, encoding(Photometric.YCbCr, 3), 16, 16);
    const stored = await sharp(withProfile, { ignoreIcc: true }).raw().toBuffer();
    const managed = await sharp(withProfile).raw().toBuffer();
    expect(pixel(image.data)).toEqual(pixel(stored));
    expect(Math.abs(pixel(managed)[0] - pixel(stored)[0])).toBeGreaterThan(5); // the profile matters
  });

  it('crops a stream larger than the stored tile size', async () => {
    const jpeg = synthJpeg({ width: 32, height: 32, colour: [90] });
    const image = await codecs.decodeTile(jpeg.standalone, encoding(Photometric.MinIsBlack, 1), 20, 10);
    expect([image.width, image.height, image.data.length]).toEqual([20, 10, 200]);
  });

  it('refuses encodings it cannot render', async () => {
    const jpeg = synthJpeg({ width: 8, height: 8, colour: [1, 2, 3] });
    await expect(codecs.decodeTile(jpeg.standalone, encoding(Photometric.Palette, 3), 8, 8)).rejects.toThrow(
      UnsupportedFormat,
    );
    await expect(
      codecs.decodeTile(
        jpeg.standalone,
        { ...encoding(Photometric.RGB, 3), bitsPerSample: [12, 12, 12] },
        8,
        8,
      ),
    ).rejects.toThrow(/12-bit JPEG/);
    await expect(
      codecs.decodeTile(
        jpeg.standalone,
        { ...encoding(Photometric.RGB, 3), compression: Compression.OldJPEG },
        8,
        8,
      ),
    ).rejects.toThrow(/old-style JPEG/);
  });

  it('turns the corrupt tile of openslide/unreadable.svs into a DecodeError', async () => {
    const tiff = readTestTiff(path.join(FIXTURES, 'wsi/openslide/unreadable.svs'));
    const ifd = tiff.ifds[0];
    await expect(
      codecs.decodeTile(tiff.chunk(0, 0), ifd.encoding, ifd.tileWidth, ifd.tileHeight),
    ).rejects.toThrow(DecodeError);
  });
});
