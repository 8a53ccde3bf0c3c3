// Hostile input for every codec: random bytes, truncated streams and empty input must end in a
// typed error (or, for formats where any byte string is valid, in an image), quickly, and never
// crash the process or a worker for good.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { createCodecs } from '../../src/codecs/index.js';
import { Compression, Photometric } from '../../src/codecs/types.js';
import type { TileEncoding } from '../../src/codecs/types.js';
import { DecodeError, MedStreamError } from '../../src/errors.js';
import { FIXTURES } from '../support/fixtures.js';
import { encodeJp2k } from './jp2k-synth.js';
import { readTestTiff } from './tiff-fixture.js';

const codecs = createCodecs({ workers: 1 });
afterAll(() => codecs.close());

const SIZE = 64;

function random(length: number, seed: number): Uint8Array {
  let state = seed;
  return Uint8Array.from({ length }, () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state >> 23;
  });
}

/** One valid 64x64 RGB tile per compression, written by libtiff (or the J2K encoder). */
async function validTiles(): Promise<Map<number, { bytes: Uint8Array; encoding: TileEncoding }>> {
  const raw = Buffer.from(random(SIZE * SIZE * 3, 7));
  const tiles = new Map<number, { bytes: Uint8Array; encoding: TileEncoding }>();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'medstream-garbage-'));
  for (const compression of ['none', 'lzw', 'deflate', 'packbits', 'jpeg', 'webp'] as const) {
    const file = path.join(dir, `${compression}.tif`);
    writeFileSync(
      file,
      await sharp(raw, { raw: { width: SIZE, height: SIZE, channels: 3 } })
        .tiff({ compression, tile: true, tileWidth: SIZE, tileHeight: SIZE })
        .toBuffer(),
    );
    const tiff = readTestTiff(file);
    tiles.set(tiff.ifds[0].encoding.compression, {
      bytes: tiff.chunk(0, 0).slice(),
      encoding: tiff.ifds[0].encoding,
    });
  }
  const rgb: TileEncoding = {
    ...(tiles.get(Compression.None)?.encoding as TileEncoding),
    photometric: Photometric.RGB,
  };
  tiles.set(Compression.AperioJP2KRGB, {
    bytes: await encodeJp2k(raw, SIZE, SIZE, 3),
    encoding: { ...rgb, compression: Compression.AperioJP2KRGB },
  });
  const zstd = Buffer.from(
    'KLUv/WQAApUFANQJAAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tng5+71/AMKERgfJi00O0JJU1phaG92fYSLkpmgp661vMPK0djf5u30+wIJEBceJSwzOkFIT1ZdZGtyeYCHjpWcpq20u8LJ0Nfe5ezz+gEIDxYdJCsyOUBHTlVcY2pxeH+GjZSboqmwt77FzNPa4ejv+Uyf8kWY6z6R5DeK3Q2kEPD6/z3gtQclAAAAkBEoewe1sh+R',
    'base64',
  );
  tiles.set(Compression.ZSTD, { bytes: zstd, encoding: { ...rgb, compression: Compression.ZSTD } });
  return tiles;
}

async function outcome(
  bytes: Uint8Array,
  encoding: TileEncoding,
  width = SIZE,
  height = SIZE,
): Promise<unknown> {
  return codecs.decodeTile(bytes, encoding, width, height).then(
    () => 'decoded',
    (e: unknown) => e,
  );
}

describe('hostile tile data', () => {
  it('every codec answers garbage, truncation and empty input with a typed error, quickly', async () => {
    // Every branch asserts: 1 (codecs) + 8 codecs x (valid, truncated, empty, 5 garbage) + 1 (time).
    expect.assertions(1 + 8 * 8 + 1);
    const tiles = await validTiles();
    expect([...tiles.keys()].sort((a, b) => a - b)).toEqual(
      [1, 5, 7, 8, 32773, 33005, 50000, 50001].sort((a, b) => a - b),
    );
    const started = Date.now();
    for (const [compression, { bytes, encoding }] of tiles) {
      // ZSTD's vector is a 16x16 tile.
      const [w, h] = compression === Compression.ZSTD ? [16, 16] : [SIZE, SIZE];
      expect(await outcome(bytes, encoding, w, h), `valid ${compression}`).toBe('decoded');

      const truncated = await outcome(bytes.subarray(0, Math.floor(bytes.length / 3)), encoding, w, h);
      if (compression === Compression.AperioJP2KRGB) {
        // OpenJPEG decodes what the packets it has describe (lower quality), by design.
        expect(truncated === 'decoded' || truncated instanceof DecodeError, `truncated ${compression}`).toBe(
          true,
        );
      } else {
        expect(truncated, `truncated ${compression}`).toBeInstanceOf(DecodeError);
      }
      expect(await outcome(new Uint8Array(0), encoding, w, h), `empty ${compression}`).toBeInstanceOf(
        DecodeError,
      );

      for (let seed = 1; seed <= 5; seed++) {
        const result = await outcome(random(bytes.length, seed * 7919 + compression), encoding, w, h);
        if (compression === Compression.None || compression === Compression.PackBits) {
          // Raw and PackBits data have no structure: random bytes may be valid pixels.
          expect(result === 'decoded' || result instanceof MedStreamError, `garbage ${compression}`).toBe(
            true,
          );
        } else {
          expect(result, `random bytes decoded as compression ${compression}`).toBeInstanceOf(MedStreamError);
        }
      }
    }
    // A hang guard, not a speed test: the ~70 decodes take well under a second; 20 s leaves room
    // for a loaded machine and stays under the 30 s test timeout, so the message says what hung.
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('refuses a tile size beyond the decode limit before decoding anything', async () => {
    const small = createCodecs({ maxDecodedBytes: 1024 });
    const tiff = readTestTiff(path.join(FIXTURES, 'wsi/svs/CMU-1-Small-Region.svs'));
    await expect(small.decodeTile(tiff.chunk(0, 0), tiff.ifds[0].encoding, 240, 240)).rejects.toThrow(
      /exceeds the decode limit/,
    );
    await small.close();
  });

  it('refuses unknown compressions by name', async () => {
    const tiff = readTestTiff(path.join(FIXTURES, 'wsi/openslide/unopenable.tiff'));
    await expect(codecs.decodeTile(new Uint8Array(10), tiff.ifds[0].encoding, 1, 1)).rejects.toThrow(
      /TIFF compression 52479 is not supported/,
    );
  });
});
