// scansCleanly, the entropy-level check before a stored JPEG tile is passed through: it vouches
// for the real fixtures' tiles (so they skip the full decode), and it never vouches for a stream
// that libjpeg decodes with a warning or an error (checked against sharp with failOn 'warning' on
// hundreds of damaged copies of real tiles, the same check as test/server/corruption.test.ts).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodesCleanly, JpegScanner, prepareJpeg, scansCleanly } from '../../src/codecs/index.js';
import { Compression } from '../../src/codecs/types.js';
import { openSlide } from '../../src/formats/detect.js';
import { BytesSource } from '../support/file-source.js';
import { FIXTURES } from '../support/fixtures.js';

const SOURCES = [
  'svs/CMU-1-Small-Region.svs', // Aperio: RGB samples, APP14 added by prepareJpeg
  'generated/pyramid-jpeg.tif', // libvips: YCbCr 4:2:0, JPEGTables
  'ndpi/test3-DAPI-2.ndpi', // tiles cut at restart intervals: RSTn in sequence
  'openslide/small.svs',
];

/** Up to `limit` stored tiles of a fixture, each as a complete stream. */
async function tilesOf(file: string, limit: number): Promise<Uint8Array[]> {
  const bytes = new Uint8Array(readFileSync(path.join(FIXTURES, 'wsi', file)));
  const slide = await openSlide(new BytesSource(bytes, path.basename(file)));
  const out: Uint8Array[] = [];
  for (const { grid } of slide.levels) {
    if (grid?.encoding.compression !== Compression.JPEG) continue;
    for (let i = 0; i < grid.tilesX * grid.tilesY && out.length < limit; i += 7) {
      const stored = await grid.readTile(i % grid.tilesX, Math.floor(i / grid.tilesX));
      if (stored) out.push(prepareJpeg(stored, grid.encoding));
    }
  }
  return out;
}

/** Where the entropy-coded data starts (after the SOS segment). */
function dataStart(stream: Uint8Array): number {
  for (let i = 2; i + 3 < stream.length; i++) {
    if (stream[i] === 0xff && stream[i + 1] === 0xda) return i + 2 + ((stream[i + 2] << 8) | stream[i + 3]);
  }
  throw new Error('no SOS');
}

function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Damaged copies of one tile: bytes and bits changed, cut, dropped, inserted, markers moved. */
function damaged(tile: Uint8Array, seed: number): [string, Uint8Array][] {
  const rnd = random(seed);
  const start = dataStart(tile);
  const end = tile.length - 2; // before EOI
  const at = () => start + Math.floor(rnd() * (end - start));
  const out: [string, Uint8Array][] = [];
  for (let i = 0; i < 4; i++) {
    const b = tile.slice();
    b[at()] = Math.floor(rnd() * 256);
    out.push(['one byte changed', b]);
    const c = tile.slice();
    c[at()] ^= 1 << Math.floor(rnd() * 8);
    out.push(['one bit flipped', c]);
  }
  const cut = at();
  out.push(['cut, EOI after', Buffer.concat([tile.subarray(0, cut), Buffer.from([0xff, 0xd9])])]);
  out.push(['cut, no EOI', tile.slice(0, cut)]);
  const drop = at();
  out.push(['one byte dropped', Buffer.concat([tile.subarray(0, drop), tile.subarray(drop + 1)])]);
  const insert = at();
  out.push([
    'one byte inserted',
    Buffer.concat([tile.subarray(0, insert), Buffer.from([0x5a]), tile.subarray(insert)]),
  ]);
  out.push(['a byte before EOI', Buffer.concat([tile.subarray(0, end), Buffer.from([0x00, 0xff, 0xd9])])]);
  out.push(['no EOI', tile.slice(0, end)]);
  const noise = tile.slice();
  const from = at();
  for (let i = from; i < Math.min(end, from + 64); i++) noise[i] = Math.floor(rnd() * 256);
  out.push(['64 bytes of noise', noise]);
  // Restart markers swapped or removed (NDPI tiles have them).
  for (let i = start; i + 1 < end; i++) {
    if (tile[i] === 0xff && tile[i + 1] >= 0xd0 && tile[i + 1] <= 0xd7) {
      const swapped = tile.slice();
      swapped[i + 1] = 0xd0 + ((tile[i + 1] - 0xd0 + 1) & 7);
      out.push(['restart marker out of sequence', swapped]);
      out.push(['restart marker removed', Buffer.concat([tile.subarray(0, i), tile.subarray(i + 2)])]);
      break;
    }
  }
  // Header damage: a table byte changed.
  const header = tile.slice();
  header[2 + Math.floor(rnd() * (start - 2))] = Math.floor(rnd() * 256);
  out.push(['one header byte changed', header]);
  return out;
}

describe('scansCleanly', () => {
  it('vouches for the stored tiles of the real JPEG fixtures (they skip the full decode)', async () => {
    for (const file of SOURCES) {
      const tiles = await tilesOf(file, 40);
      expect(tiles.length, file).toBeGreaterThan(0);
      for (const [i, tile] of tiles.entries())
        expect(scansCleanly(tile, 1 << 26), `${file} #${i}`).toBe(true);
    }
  });

  it('never vouches for a damaged tile that libjpeg decodes with a warning or an error', async () => {
    // One scanner for every case, as the tile service keeps one: its table cache must not let a
    // damaged table pass as the intact one.
    const scanner = new JpegScanner();
    let cases = 0;
    let refused = 0;
    const wrong: string[] = [];
    for (const [f, file] of SOURCES.entries()) {
      for (const [t, tile] of (await tilesOf(file, 6)).entries()) {
        for (const [name, bytes] of damaged(tile, 1000 * f + t)) {
          cases++;
          if (!scanner.scansCleanly(bytes, 1 << 26)) {
            refused++;
            continue;
          }
          // Vouched for: sharp must decode it with no warning at all.
          if (!(await decodesCleanly(bytes, 1 << 26))) wrong.push(`${file} tile ${t}: ${name}`);
        }
      }
    }
    expect(wrong).toEqual([]);
    expect(cases).toBeGreaterThan(200);
    // Most damage is caught by the scan itself (a changed bit can still be a valid stream).
    expect(refused / cases).toBeGreaterThan(0.6);
  });

  it('refuses too many pixels, and leaves progressive and odd-marker streams to the full decode', async () => {
    const [tile] = await tilesOf('generated/pyramid-jpeg.tif', 1);
    expect(scansCleanly(tile, 256 * 256)).toBe(true);
    expect(scansCleanly(tile, 256 * 256 - 1)).toBe(false);
    const progressive = await sharp(tile).jpeg({ progressive: true }).toBuffer();
    expect(scansCleanly(progressive, 1 << 26)).toBe(false);
    expect(await decodesCleanly(progressive, 1 << 26)).toBe(true);
    // A JFIF APP0 with major version 1 is fine; major version 2 makes libjpeg warn.
    const baseline = await sharp(tile).jpeg().toBuffer();
    expect(scansCleanly(baseline, 1 << 26)).toBe(true);
    const withJfif = (major: number) =>
      Buffer.concat([
        baseline.subarray(0, 2),
        Buffer.from([0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, major, 1, 0, 0, 1, 0, 1, 0, 0]),
        baseline.subarray(2),
      ]);
    expect(scansCleanly(withJfif(1), 1 << 26)).toBe(true);
    expect(scansCleanly(withJfif(2), 1 << 26)).toBe(false);
    expect(await decodesCleanly(withJfif(2), 1 << 26)).toBe(false);
    // A stream with its Huffman tables left out: libjpeg-turbo would use the standard ones.
    const noDht = Buffer.from(baseline);
    for (let i = 2; i < dataStart(baseline); i++)
      if (noDht[i] === 0xff && noDht[i + 1] === 0xc4) noDht[i + 1] = 0xe5;
    expect(scansCleanly(noDht, 1 << 26)).toBe(false);
  });
});
