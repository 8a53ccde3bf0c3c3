// A deliberately tiny TIFF/BigTIFF reader for codec tests: it lists the IFDs of a file in memory
// and returns one stored tile (or strip) plus the `TileEncoding` it needs, so codec tests do not
// depend on formats/ (which has its own tests). Only what the fixtures use is supported.
import { readFileSync } from 'node:fs';
import type { TileEncoding } from '../../src/codecs/types.js';
import type { ImageGrid } from '../../src/formats/slide.js';

const TYPE_SIZES: Record<number, number> = {
  1: 1,
  2: 1,
  3: 2,
  4: 4,
  6: 1,
  7: 1,
  8: 2,
  9: 4,
  16: 8,
  17: 8,
  13: 4,
};

export interface TestIfd {
  tags: Map<number, number[] | Uint8Array>;
  width: number;
  height: number;
  tileWidth: number;
  tileHeight: number;
  encoding: TileEncoding;
  /** Byte offsets and counts of the tiles (or strips), row-major. */
  offsets: number[];
  byteCounts: number[];
}

export interface TestTiff {
  bytes: Uint8Array;
  ifds: TestIfd[];
  /** The stored bytes of tile/strip `index` of IFD `ifd`. */
  chunk(ifd: number, index: number): Uint8Array;
}

export function readTestTiff(filePath: string): TestTiff {
  const bytes = new Uint8Array(readFileSync(filePath));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = bytes[0] === 0x49;
  const big = view.getUint16(2, le) === 43;
  const u16 = (o: number): number => view.getUint16(o, le);
  const u32 = (o: number): number => view.getUint32(o, le);
  const u64 = (o: number): number => Number(view.getBigUint64(o, le));
  const ifds: TestIfd[] = [];
  let next = big ? u64(8) : u32(4);
  while (next !== 0 && ifds.length < 64) {
    const count = big ? u64(next) : u16(next);
    const entrySize = big ? 20 : 12;
    const first = next + (big ? 8 : 2);
    const tags = new Map<number, number[] | Uint8Array>();
    for (let i = 0; i < count; i++) {
      const e = first + i * entrySize;
      const tag = u16(e);
      const type = u16(e + 2);
      const n = big ? u64(e + 4) : u32(e + 4);
      const size = (TYPE_SIZES[type] ?? 1) * n;
      const inline = big ? 8 : 4;
      const valueAt = size <= inline ? e + (big ? 12 : 8) : big ? u64(e + 12) : u32(e + 8);
      if (type === 7 || type === 1 || type === 2) {
        tags.set(tag, bytes.subarray(valueAt, valueAt + n));
      } else {
        const values: number[] = [];
        const read = type === 3 ? u16 : type === 16 ? u64 : u32;
        const step = TYPE_SIZES[type] ?? 4;
        for (let k = 0; k < n; k++) values.push(read(valueAt + k * step));
        tags.set(tag, values);
      }
    }
    ifds.push(describe(tags, le));
    const after = first + count * entrySize;
    next = big ? u64(after) : u32(after);
  }
  return {
    bytes,
    ifds,
    chunk: (ifd, index) => {
      const d = ifds[ifd];
      return bytes.subarray(d.offsets[index], d.offsets[index] + d.byteCounts[index]);
    },
  };
}

function describe(tags: Map<number, number[] | Uint8Array>, littleEndian: boolean): TestIfd {
  const num = (tag: number, fallback: number): number => {
    const v = tags.get(tag);
    return v instanceof Uint8Array || v === undefined ? fallback : v[0];
  };
  const list = (tag: number): number[] | undefined => {
    const v = tags.get(tag);
    return v instanceof Uint8Array ? undefined : v;
  };
  const width = num(256, 0);
  const height = num(257, 0);
  const tiled = tags.has(322);
  const tables = tags.get(347);
  const subsampling = list(530);
  return {
    tags,
    width,
    height,
    tileWidth: tiled ? num(322, 0) : width,
    tileHeight: tiled ? num(323, 0) : num(278, height),
    offsets: list(tiled ? 324 : 273) ?? [],
    byteCounts: list(tiled ? 325 : 279) ?? [],
    encoding: {
      compression: num(259, 1),
      photometric: num(262, 2),
      samplesPerPixel: num(277, 1),
      bitsPerSample: list(258) ?? [1],
      sampleFormat: num(339, 1),
      planarConfiguration: num(284, 1),
      predictor: num(317, 1),
      ...(tables instanceof Uint8Array ? { jpegTables: tables } : {}),
      ...(subsampling ? { ycbcrSubsampling: [subsampling[0], subsampling[1]] as [number, number] } : {}),
      ...(list(338) ? { extraSamples: list(338) } : {}),
      littleEndian,
    },
  };
}

/** An `ImageGrid` over one IFD of a test TIFF (tiles, or strips with a short last strip). */
export function testGrid(tiff: TestTiff, ifd: number): ImageGrid {
  const d = tiff.ifds[ifd];
  const tiled = d.tags.has(322);
  const tilesX = Math.ceil(d.width / d.tileWidth);
  const tilesY = Math.ceil(d.height / d.tileHeight);
  return {
    width: d.width,
    height: d.height,
    tileWidth: d.tileWidth,
    tileHeight: d.tileHeight,
    tilesX,
    tilesY,
    encoding: d.encoding,
    layout: tiled ? 'tiles' : 'strips',
    readTile: async (x, y) => {
      const index = y * tilesX + x;
      return d.byteCounts[index] === 0 ? null : tiff.chunk(ifd, index);
    },
  };
}
