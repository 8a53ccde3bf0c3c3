// The PNG fast path (src/ai/png-decode.ts) against sharp, the reference: gray, gray+alpha, RGB and
// RGBA images of odd sizes with every row filter (sharp's adaptive filtering mixes them; the
// no-filter encode and a hand-built file using each filter type) decode to the same bytes; PNGs
// it does not handle exactly (palette, 16-bit, interlaced, gAMA, a bad CRC, too many pixels, a
// truncated stream) are left to sharp (undefined), and an upload through the route still gets
// sharp's typed 400 for a broken file.

import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeSimplePng } from '../../src/ai/png-decode.js';

function noise(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    // Smooth ramps plus noise: the adaptive filter picks different filters row by row.
    out[i] = ((i % 97) * 2 + (s >>> 24) * (i % 3 === 0 ? 1 : 0)) & 0xff;
  }
  return out;
}

async function viaSharp(png: Buffer) {
  const { data, info } = await sharp(png).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  return { data: [...data], width: info.width, height: info.height, channels: info.channels };
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A hand-built RGB PNG whose row y uses filter y % 5, encoded correctly from `pixels`. */
function everyFilterPng(pixels: Buffer, width: number, height: number): Buffer {
  const bpp = 3;
  const stride = width * bpp;
  const rows: Buffer[] = [];
  for (let y = 0; y < height; y++) {
    const f = y % 5;
    const row = Buffer.alloc(stride + 1);
    row[0] = f;
    for (let x = 0; x < stride; x++) {
      const v = pixels[y * stride + x];
      const a = x >= bpp ? pixels[y * stride + x - bpp] : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + x] : 0;
      const c = x >= bpp && y > 0 ? pixels[(y - 1) * stride + x - bpp] : 0;
      const p = a + b - c;
      const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
      const paeth = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      const pred = [0, a, b, (a + b) >> 1, paeth][f];
      row[x + 1] = (v - pred) & 0xff;
    }
    rows.push(row);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const z = deflateSync(Buffer.concat(rows));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('tEXt', Buffer.from('Comment\0test', 'latin1')),
    // Two IDAT chunks: the stream is split anywhere.
    chunk('IDAT', z.subarray(0, 7)),
    chunk('IDAT', z.subarray(7)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('decodeSimplePng', () => {
  it('decodes 8-bit gray, gray+alpha, RGB and RGBA exactly as sharp does', async () => {
    for (const channels of [1, 2, 3, 4] as const)
      for (const [width, height] of [
        [1, 1],
        [33, 17],
        [64, 64],
      ])
        for (const adaptiveFiltering of [true, false]) {
          const png = await sharp(noise(width * height * channels, width + channels), {
            raw: { width, height, channels },
          })
            .png({ adaptiveFiltering, compressionLevel: 6 })
            .toBuffer();
          const fast = decodeSimplePng(png, 1e8);
          const label = `${channels} channels ${width}x${height} adaptive ${adaptiveFiltering}`;
          expect(fast, label).toBeDefined();
          expect({ ...fast!, data: [...fast!.data] }, label).toEqual(await viaSharp(png));
        }
  });

  it('undoes every filter type (a file with rows of filters 0 to 4) as sharp does', async () => {
    const [width, height] = [23, 15];
    const pixels = noise(width * height * 3, 7);
    const png = everyFilterPng(pixels, width, height);
    const fast = decodeSimplePng(png, 1e8)!;
    expect([...fast.data]).toEqual([...pixels]);
    expect({ ...fast, data: [...fast.data] }).toEqual(await viaSharp(png));
  });

  it('leaves to sharp what it does not handle exactly', async () => {
    const rgb = noise(16 * 16 * 3, 3);
    const raw = { raw: { width: 16, height: 16, channels: 3 as const } };
    const palette = await sharp(rgb, raw).png({ palette: true }).toBuffer();
    const deep = await sharp(rgb, raw).toColourspace('rgb16').png().toBuffer();
    const interlaced = await sharp(rgb, raw).png({ progressive: true }).toBuffer();
    const plain = everyFilterPng(rgb, 16, 16);
    const gama = Buffer.concat([
      plain.subarray(0, 33),
      chunk('gAMA', Buffer.from([0, 0, 0xb1, 0x8f])),
      plain.subarray(33),
    ]);
    const badCrc = Buffer.from(plain);
    badCrc[45] ^= 1; // a byte of the tEXt data: only the CRC disagrees
    for (const [label, png] of [
      ['palette', palette],
      ['16-bit', deep],
      ['interlaced', interlaced],
      ['gAMA', gama],
      ['bad CRC', badCrc],
      ['truncated', plain.subarray(0, plain.length - 20)],
      ['not a PNG', Buffer.from('hello, this is not a PNG file at all....................')],
    ] as const)
      expect(decodeSimplePng(png, 1e8), label).toBeUndefined();
    expect(decodeSimplePng(plain, 16 * 16 - 1), 'over maxPixels').toBeUndefined();
    expect(decodeSimplePng(plain, 16 * 16)).toBeDefined();
  });
});
