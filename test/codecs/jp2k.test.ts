import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createCodecs } from '../../src/codecs/index.js';
import { readJp2kHeader } from '../../src/codecs/jp2k-header.js';
import { Compression, Photometric } from '../../src/codecs/types.js';
import type { TileEncoding } from '../../src/codecs/types.js';
import { DecodeError, UnsupportedFormat } from '../../src/errors.js';
import { FIXTURES } from '../support/fixtures.js';
import { loadRgb } from '../support/image-compare.js';
import { encodeJp2k } from './jp2k-synth.js';
import { readTestTiff } from './tiff-fixture.js';

const codecs = createCodecs({ workers: 2 });
afterAll(() => codecs.close());

const encoding = (compression: number, samplesPerPixel = 3): TileEncoding => ({
  compression,
  photometric: samplesPerPixel === 3 ? Photometric.RGB : Photometric.MinIsBlack,
  samplesPerPixel,
  bitsPerSample: new Array<number>(samplesPerPixel).fill(8),
  sampleFormat: 1,
  planarConfiguration: 1,
  predictor: 1,
});

function pattern(width: number, height: number, channels: number): Uint8Array {
  return Uint8Array.from(
    { length: width * height * channels },
    (_, i) => (i * 13 + Math.floor(i / 97) * 7) & 255,
  );
}

describe('JPEG 2000', () => {
  it('decodes Aperio 33005 tiles of tcga-cr-7395 exactly as OpenSlide renders them', async () => {
    const tiff = readTestTiff(path.join(FIXTURES, 'wsi/svs/tcga-cr-7395-01a-01-ts1.svs'));
    const ifd = tiff.ifds[0];
    expect(ifd.encoding.compression).toBe(Compression.AperioJP2KRGB);
    // Tile (8, 6) covers level-0 x 2048..2303, y 1536..1791; the reference region starts at (2021, 1633).
    const tilesX = Math.ceil(ifd.width / ifd.tileWidth);
    const tile = await codecs.decodeTile(tiff.chunk(0, 6 * tilesX + 8), ifd.encoding, 256, 256);
    expect([tile.width, tile.height, tile.channels]).toEqual([256, 256, 3]);
    const reference = await loadRgb(
      path.join(FIXTURES, 'reference/tcga-cr-7395-01a-01-ts1.svs.L0.2021_1633_400x300.png'),
    );
    let maxDifference = 0;
    for (let y = 1633; y < 1792; y++) {
      for (let x = 2048; x < 2304; x++) {
        for (let c = 0; c < 3; c++) {
          const ours = tile.data[((y - 1536) * 256 + (x - 2048)) * 3 + c];
          const theirs = reference.data[((y - 1633) * 400 + (x - 2021)) * 3 + c];
          maxDifference = Math.max(maxDifference, Math.abs(ours - theirs));
        }
      }
    }
    expect(maxDifference).toBe(0);
  });

  it('round-trips RGB (33005 and 34712) and grayscale codestreams', async () => {
    const rgb = pattern(48, 40, 3);
    const stream = await encodeJp2k(rgb, 48, 40, 3);
    for (const compression of [Compression.AperioJP2KRGB, Compression.JPEG2000]) {
      const image = await codecs.decodeTile(stream, encoding(compression), 48, 40);
      expect(Buffer.from(image.data).equals(Buffer.from(rgb))).toBe(true);
    }
    const gray = pattern(33, 17, 1);
    const image = await codecs.decodeTile(
      await encodeJp2k(gray, 33, 17, 1),
      encoding(Compression.JPEG2000, 1),
      33,
      17,
    );
    expect([image.channels, ...image.data.subarray(0, 5)]).toEqual([1, ...gray.subarray(0, 5)]);
  });

  it('converts Aperio 33003 YCbCr components to RGB with the JFIF equations', async () => {
    const ycbcr = Uint8Array.from([150, 100, 180, 0, 128, 128, 255, 128, 128, 30, 255, 0]);
    const stream = await encodeJp2k(ycbcr, 4, 1, 3);
    const image = await codecs.decodeTile(stream, encoding(Compression.AperioJP2KYCbCr), 4, 1);
    // (30, 255, 0): G = 30 - 0.34414 * 127 + 0.71414 * 128 = 77.7; R and B clamp.
    expect([...image.data]).toEqual([223, 123, 100, 0, 0, 0, 255, 255, 255, 0, 78, 255]);
  });

  it('reads the SIZ header and refuses layouts it does not support before decoding', async () => {
    const stream = await encodeJp2k(pattern(16, 8, 3), 16, 8, 3);
    expect(readJp2kHeader(stream)).toMatchObject({
      width: 16,
      height: 8,
      components: [{ precision: 8, dx: 1 }, {}, {}],
    });
    const patched = (at: number, value: number): Uint8Array => {
      const copy = stream.slice();
      copy[at] = value;
      return copy;
    };
    // SIZ starts at byte 4; component 1's XRsiz is at 4 + 38 + 3 + 1.
    await expect(
      codecs.decodeTile(patched(46, 2), encoding(Compression.AperioJP2KRGB), 16, 8),
    ).rejects.toThrow(/subsampling/);
    // Component 0 precision 16 (Ssiz = 15).
    await expect(codecs.decodeTile(patched(42, 15), encoding(Compression.JPEG2000), 16, 8)).rejects.toThrow(
      UnsupportedFormat,
    );
    // Xsiz and Ysiz claiming 65535 x 65535 pixels: refused without allocating.
    const huge = stream.slice();
    huge.set([0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff], 8);
    await expect(codecs.decodeTile(huge, encoding(Compression.JPEG2000), 16, 8)).rejects.toThrow(
      /exceeds the decode limit/,
    );
  });

  it('turns garbage and truncated codestreams into DecodeError and keeps working', async () => {
    const rgb = pattern(64, 64, 3);
    const stream = await encodeJp2k(rgb, 64, 64, 3);
    await expect(
      codecs.decodeTile(Uint8Array.of(1, 2, 3), encoding(Compression.JPEG2000), 64, 64),
    ).rejects.toThrow(DecodeError);
    const scrambled = stream.slice();
    for (let i = 60; i < scrambled.length; i += 3) scrambled[i] ^= 0x5a;
    const truncated = stream.slice(0, Math.floor(stream.length / 3));
    for (const bad of [scrambled, truncated]) {
      const outcome = await codecs.decodeTile(bad, encoding(Compression.JPEG2000), 64, 64).then(
        (image) => image,
        (e: unknown) => e,
      );
      // OpenJPEG may conceal damage in a code-block and still produce pixels of the tile's size;
      // otherwise the answer is a DecodeError. Either way it must not crash.
      if (outcome instanceof DecodeError) expect(outcome).toBeInstanceOf(DecodeError);
      else expect(outcome).toMatchObject({ width: 64, height: 64, channels: 3 });
    }
    const image = await codecs.decodeTile(stream, encoding(Compression.JPEG2000), 64, 64);
    expect(Buffer.from(image.data).equals(Buffer.from(rgb))).toBe(true);
  });
});
