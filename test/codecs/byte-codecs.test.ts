// Round trips through TIFFs written by libtiff (via sharp): each stored tile decoded by our
// codecs and reassembled must equal the pixels libtiff itself reads back.
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { createCodecs } from '../../src/codecs/index.js';
import { Compression, Photometric } from '../../src/codecs/types.js';
import type { DecodedImage, TileEncoding } from '../../src/codecs/types.js';
import { DecodeError } from '../../src/errors.js';
import { readTestTiff } from './tiff-fixture.js';
import { writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

const codecs = createCodecs({ workers: 1 });
afterAll(() => codecs.close());

const WIDTH = 150;
const HEIGHT = 100;

/** Gradients plus noise: long runs for the dictionary coders and enough entropy for 12-bit LZW codes. */
function testPixels(channels: number): Buffer {
  const raw = Buffer.alloc(WIDTH * HEIGHT * channels);
  let seed = 12345;
  for (let i = 0; i < raw.length; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const x = Math.floor(i / channels) % WIDTH;
    raw[i] = x < 50 ? (x * 5) & 255 : x < 100 ? seed >> 23 : (i * 3) & 255;
  }
  return raw;
}

async function writeTiff(raw: Buffer, channels: 1 | 3 | 4, options: sharp.TiffOptions): Promise<string> {
  const image = sharp(raw, { raw: { width: WIDTH, height: HEIGHT, channels } });
  if (channels === 1) image.toColourspace('b-w'); // sharp would otherwise write sRGB
  const bytes = await image.tiff({ tile: true, tileWidth: 64, tileHeight: 64, ...options }).toBuffer();
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'medstream-codec-')), 'test.tif');
  writeFileSync(file, bytes);
  return file;
}

/** Decodes every tile of IFD 0 and assembles the image, edge tiles cropped. */
async function decodeAll(file: string): Promise<{ image: DecodedImage; encoding: TileEncoding }> {
  const tiff = readTestTiff(file);
  const ifd = tiff.ifds[0];
  const tilesX = Math.ceil(ifd.width / ifd.tileWidth);
  let channels = 0;
  let data = new Uint8Array(0);
  for (let index = 0; index < ifd.offsets.length; index++) {
    const tile = await codecs.decodeTile(tiff.chunk(0, index), ifd.encoding, ifd.tileWidth, ifd.tileHeight);
    if (channels === 0) {
      channels = tile.channels;
      data = new Uint8Array(ifd.width * ifd.height * channels);
    }
    const ox = (index % tilesX) * ifd.tileWidth;
    const oy = Math.floor(index / tilesX) * ifd.tileHeight;
    for (let y = 0; y < tile.height && oy + y < ifd.height; y++) {
      const n = Math.min(tile.width, ifd.width - ox) * channels;
      const from = y * tile.width * channels;
      data.set(tile.data.subarray(from, from + n), ((oy + y) * ifd.width + ox) * channels);
    }
  }
  return {
    image: { data, width: ifd.width, height: ifd.height, channels: channels as 1 | 3 | 4 },
    encoding: ifd.encoding,
  };
}

async function libtiffPixels(file: string): Promise<Buffer> {
  return sharp(file).raw().toBuffer();
}

describe('byte-stream codecs against libtiff', () => {
  it.each([
    ['LZW + horizontal predictor', { compression: 'lzw', predictor: 'horizontal' }, Compression.LZW],
    ['LZW', { compression: 'lzw', predictor: 'none' }, Compression.LZW],
    [
      'Deflate + horizontal predictor',
      { compression: 'deflate', predictor: 'horizontal' },
      Compression.Deflate,
    ],
    ['PackBits', { compression: 'packbits' }, Compression.PackBits],
    ['uncompressed', { compression: 'none' }, Compression.None],
  ] as const)('%s RGB round-trips exactly', async (_name, options, compression) => {
    const raw = testPixels(3);
    const file = await writeTiff(raw, 3, options);
    const { image, encoding } = await decodeAll(file);
    expect(encoding.compression).toBe(compression);
    expect(image.channels).toBe(3);
    expect(Buffer.from(image.data).equals(raw)).toBe(true);
  });

  it('decodes grayscale and RGBA (unassociated alpha) layouts', async () => {
    const gray = testPixels(1);
    const grayResult = await decodeAll(
      await writeTiff(gray, 1, { compression: 'lzw', predictor: 'horizontal' }),
    );
    expect(grayResult.image.channels).toBe(1);
    expect(Buffer.from(grayResult.image.data).equals(gray)).toBe(true);

    const rgba = testPixels(4);
    const rgbaFile = await writeTiff(rgba, 4, { compression: 'deflate' });
    const rgbaResult = await decodeAll(rgbaFile);
    expect(rgbaResult.encoding.extraSamples).toEqual([2]);
    expect(rgbaResult.image.channels).toBe(4);
    expect(Buffer.from(rgbaResult.image.data).equals(rgba)).toBe(true);
  });

  it('WebP tiles decode like libtiff decodes them', async () => {
    const raw = testPixels(3);
    const file = await writeTiff(raw, 3, { compression: 'webp', quality: 90 });
    const { image, encoding } = await decodeAll(file);
    expect(encoding.compression).toBe(Compression.WebP);
    const expected = await libtiffPixels(file);
    expect(image.channels).toBe(3);
    expect(Buffer.from(image.data).equals(expected)).toBe(true);
  });
});

const zstdEncoding: TileEncoding = {
  compression: Compression.ZSTD,
  photometric: Photometric.RGB,
  samplesPerPixel: 3,
  bitsPerSample: [8, 8, 8],
  sampleFormat: 1,
  planarConfiguration: 1,
  predictor: 1,
};

describe('ZSTD', () => {
  // 16x16 RGB, byte i = (7 i + 3 floor(i / 48)) mod 256, compressed by `zstd -19` (libzstd 1.5).
  const ZSTD_VECTOR =
    'KLUv/WQAApUFANQJAAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tng5+71/AMKERgfJi00O0JJU1phaG92fYSLkpmgp661vMPK0djf5u30+wIJEBceJSwzOkFIT1ZdZGtyeYCHjpWcpq20u8LJ0Nfe5ezz+gEIDxYdJCsyOUBHTlVcY2pxeH+GjZSboqmwt77FzNPa4ejv+Uyf8kWY6z6R5DeK3Q2kEPD6/z3gtQclAAAAkBEoewe1sh+R';
  const expected = Uint8Array.from({ length: 768 }, (_, i) => (i * 7 + Math.floor(i / 48) * 3) % 256);

  it('decodes a libzstd-compressed tile', async () => {
    const image = await codecs.decodeTile(Buffer.from(ZSTD_VECTOR, 'base64'), zstdEncoding, 16, 16);
    expect(Buffer.from(image.data).equals(Buffer.from(expected))).toBe(true);
  });

  it('decodes a frame of raw and RLE blocks', async () => {
    // Frame header: magic, descriptor 0x20 (single segment, 1-byte content size), size 48.
    const header = [0x28, 0xb5, 0x2f, 0xfd, 0x20, 48];
    const raw = [...expected.subarray(0, 24)];
    const rawBlock = [(24 << 3) | (0 << 1) | 0, 0, 0, ...raw]; // raw block, 24 bytes
    const rleBlock = [(24 << 3) | (1 << 1) | 1, 0, 0, 0x42]; // last block: RLE of 0x42 x 24
    const frame = Uint8Array.from([...header, ...rawBlock, ...rleBlock]);
    const image = await codecs.decodeTile(frame, zstdEncoding, 4, 4);
    expect([...image.data.subarray(0, 24)]).toEqual(raw);
    expect(image.data.subarray(24).every((v) => v === 0x42)).toBe(true);
  });

  it('bounds the output of a frame that expands far beyond the tile', async () => {
    // Thousands of 128 KiB RLE blocks from a few KiB of input: only the tile's 48 bytes are kept.
    const block = [(131072 << 3) & 255, (131072 >> 5) & 255, (131072 >> 13) & 255, 7].map((b, i) =>
      i === 0 ? b | (1 << 1) : b,
    );
    const blocks: number[] = [];
    for (let i = 0; i < 4000; i++) blocks.push(...block);
    const frame = Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, ...blocks]);
    const image = await codecs.decodeTile(frame, zstdEncoding, 4, 4);
    expect(image.data.every((v) => v === 7)).toBe(true);
  });

  it('reports truncated data', async () => {
    const bytes = Buffer.from(ZSTD_VECTOR, 'base64');
    await expect(codecs.decodeTile(bytes.subarray(0, 40), zstdEncoding, 16, 16)).rejects.toThrow(DecodeError);
  });
});

describe('Deflate', () => {
  it('inflates only what the tile needs from a stream that expands far beyond it', async () => {
    const bomb = zlib.deflateSync(Buffer.alloc(16 * 1024 * 1024, 9)); // ~16 KiB in, 16 MiB out
    const encoding: TileEncoding = { ...zstdEncoding, compression: Compression.Deflate };
    const image = await codecs.decodeTile(bomb, encoding, 64, 64);
    expect(image.data.length).toBe(64 * 64 * 3);
    expect(image.data.every((v) => v === 9)).toBe(true);
  });
});
