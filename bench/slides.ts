// Test slides for the `compare` suite, built by this project's own code from the fixtures and
// cached in .bench-cache/slides/ (gitignored; never committed):
//
// - a 20000x16000 JPEG tiled pyramidal TIFF (256-px tiles, q88, 2x pyramid of pages), written
//   by sharp/libvips from CMU-1-Small-Region's pixels tiled across the canvas, so tiles hold
//   real tissue texture and JPEG sizes are those of a real slide;
// - a 60000x45000 Aperio-layout SVS (240-px tiles, levels 1/4/16/64, a thumbnail in the
//   second directory, the Aperio ImageDescription) whose tiles are RGB-colourspace JPEG. sharp
//   cannot write RGB (non-YCbCr) JPEG, so its tiles are CMU-1-Small-Region.svs's own stored
//   tiles (Aperio RGB JPEG, with that file's JPEGTables), laid out as a mosaic on every level;
//   the TIFF structure is written here. Reduced levels are thus a mosaic too, not a true
//   downsample: fine for timing, not for looking at.
//
// Also a small TIFF directory reader, used by the benchmarks to know a tile's stored size.

import { open, mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

export const FIXTURES = fileURLToPath(new URL('../../shared/fixtures/wsi/', import.meta.url));
export const SLIDE_CACHE = fileURLToPath(new URL('../.bench-cache/slides/', import.meta.url));
const CMU = path.join(FIXTURES, 'svs/CMU-1-Small-Region.svs');
const PYRAMID_FIXTURE = path.join(FIXTURES, 'generated/pyramid-jpeg.tif');

/** One TIFF directory: its tags, numbers as arrays, ASCII as a string. */
export interface TiffDirectory {
  offset: number;
  tags: Map<number, number[] | string | Uint8Array>;
}

const TYPE_SIZE: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 16: 8, 13: 4, 18: 8 };

/** Reads every directory of a little-endian TIFF or BigTIFF (what libvips and Aperio write). */
export async function readTiffDirectories(file: string): Promise<TiffDirectory[]> {
  const fh = await open(file, 'r');
  try {
    const read = async (offset: number, length: number) => {
      const buf = Buffer.alloc(length);
      await fh.read(buf, 0, length, offset);
      return buf;
    };
    const head = await read(0, 16);
    if (head.toString('latin1', 0, 2) !== 'II') throw new Error(`${file}: not a little-endian TIFF`);
    const big = head.readUInt16LE(2) === 43;
    let next = big ? Number(head.readBigUInt64LE(8)) : head.readUInt32LE(4);
    const dirs: TiffDirectory[] = [];
    while (next !== 0 && dirs.length < 64) {
      const countBytes = await read(next, big ? 8 : 2);
      const count = big ? Number(countBytes.readBigUInt64LE(0)) : countBytes.readUInt16LE(0);
      const entrySize = big ? 20 : 12;
      const body = await read(next + (big ? 8 : 2), count * entrySize + (big ? 8 : 4));
      const tags = new Map<number, number[] | string | Uint8Array>();
      for (let i = 0; i < count; i++) {
        const e = i * entrySize;
        const tag = body.readUInt16LE(e);
        const type = body.readUInt16LE(e + 2);
        const n = big ? Number(body.readBigUInt64LE(e + 4)) : body.readUInt32LE(e + 4);
        const size = (TYPE_SIZE[type] ?? 1) * n;
        const inline = size <= (big ? 8 : 4);
        const valueAt = e + (big ? 12 : 8);
        const raw = inline
          ? body.subarray(valueAt, valueAt + size)
          : await read(big ? Number(body.readBigUInt64LE(valueAt)) : body.readUInt32LE(valueAt), size);
        if (type === 2) tags.set(tag, raw.toString('latin1').replace(/\0+$/, ''));
        else if (type === 1 || type === 7) tags.set(tag, new Uint8Array(raw));
        else {
          const values: number[] = [];
          for (let k = 0; k < n; k++) {
            if (type === 3) values.push(raw.readUInt16LE(k * 2));
            else if (type === 4 || type === 13) values.push(raw.readUInt32LE(k * 4));
            else if (type === 16 || type === 18) values.push(Number(raw.readBigUInt64LE(k * 8)));
            else if (type === 5) values.push(raw.readUInt32LE(k * 8) / raw.readUInt32LE(k * 8 + 4));
          }
          tags.set(tag, values);
        }
      }
      dirs.push({ offset: next, tags });
      const tail = count * entrySize;
      next = big ? Number(body.readBigUInt64LE(tail)) : body.readUInt32LE(tail);
    }
    return dirs;
  } finally {
    await fh.close();
  }
}

export interface TiledLevel {
  width: number;
  height: number;
  tileWidth: number;
  tileHeight: number;
  cols: number;
  rows: number;
  offsets: number[];
  byteCounts: number[];
}

/** The tiled directories of a TIFF, in file order (a pyramid's levels, finest first). */
export async function tiledLevels(file: string): Promise<TiledLevel[]> {
  const num = (d: TiffDirectory, tag: number) => (d.tags.get(tag) as number[] | undefined)?.[0] ?? 0;
  return (await readTiffDirectories(file))
    .filter((d) => d.tags.has(322))
    .map((d) => {
      const [width, height, tileWidth, tileHeight] = [256, 257, 322, 323].map((t) => num(d, t));
      return {
        width,
        height,
        tileWidth,
        tileHeight,
        cols: Math.ceil(width / tileWidth),
        rows: Math.ceil(height / tileHeight),
        offsets: d.tags.get(324) as number[],
        byteCounts: d.tags.get(325) as number[],
      };
    });
}

export interface BenchSlide {
  file: string;
  /** Its storage key (base name). */
  id: string;
  width: number;
  height: number;
  tileSize: number;
  bytes: number;
  /** Seconds spent generating it in this run (0 when it came from the cache). */
  generatedSeconds: number;
}

async function cached(
  name: string,
  make: (tmp: string) => Promise<void>,
): Promise<{ file: string; seconds: number }> {
  await mkdir(SLIDE_CACHE, { recursive: true });
  const file = path.join(SLIDE_CACHE, name);
  if (
    await stat(file).then(
      (s) => s.size > 0,
      () => false,
    )
  )
    return { file, seconds: 0 };
  const tmp = `${file}.partial-${process.pid}`;
  const started = performance.now();
  try {
    await make(tmp);
    await rename(tmp, file);
  } finally {
    await rm(tmp, { force: true });
  }
  return { file, seconds: (performance.now() - started) / 1000 };
}

async function describe(file: string, seconds: number, tileSize: number): Promise<BenchSlide> {
  const [level0] = await tiledLevels(file);
  return {
    file,
    id: path.basename(file),
    width: level0.width,
    height: level0.height,
    tileSize,
    bytes: (await stat(file)).size,
    generatedSeconds: seconds,
  };
}

/** CMU-1-Small-Region's level-0 pixels (2220x2967, from the libvips pyramid fixture), raw RGB. */
async function texture(): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(PYRAMID_FIXTURE, { page: 0 })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

export const PYRAMID_SIZE = { width: 20000, height: 16000 };

/** The 20000x16000 JPEG pyramidal TIFF (256-px tiles), generated once and cached. */
export async function benchPyramid(): Promise<BenchSlide> {
  const { width, height } = PYRAMID_SIZE;
  const { file, seconds } = await cached(`bench-pyramid-${width}x${height}-q88.tif`, async (tmp) => {
    const tex = await texture();
    await sharp({ create: { width, height, channels: 3, background: '#ffffff' }, limitInputPixels: false })
      .composite([
        {
          input: tex.data,
          raw: { width: tex.width, height: tex.height, channels: 3 },
          tile: true,
          gravity: 'northwest',
        },
      ])
      .tiff({ tile: true, tileWidth: 256, tileHeight: 256, pyramid: true, compression: 'jpeg', quality: 88 })
      .toFile(tmp);
  });
  return describe(file, seconds, 256);
}

export const SVS_SIZE = { width: 60000, height: 45000 };

interface TileSpec {
  width: number;
  height: number;
  description: string;
  /** Tiled level: tile source index per tile; stripped (thumbnail): raw RGB pixels. */
  tiles?: { cols: number; rows: number };
  strip?: Buffer;
}

/**
 * The 60000x45000 Aperio-layout SVS: level 0, the thumbnail (stripped, uncompressed), then the
 * 4x, 16x and 64x levels, every tile one of CMU-1-Small-Region.svs's stored RGB-JPEG tiles.
 */
export async function benchSvs(): Promise<BenchSlide> {
  const { width, height } = SVS_SIZE;
  const { file, seconds } = await cached(`bench-aperio-${width}x${height}.svs`, (tmp) => writeSvs(tmp));
  return describe(file, seconds, 240);
}

async function writeSvs(tmp: string): Promise<void> {
  const { width, height } = SVS_SIZE;
  const [cmuDir] = await readTiffDirectories(CMU);
  const [cmu] = await tiledLevels(CMU);
  const jpegTables = cmuDir.tags.get(347) as Uint8Array;
  const tileSize = cmu.tileWidth;
  // CMU's full interior tiles (its last column and row are padded edge tiles).
  const srcCols = cmu.cols - 1;
  const srcRows = cmu.rows - 1;
  const source = await open(CMU, 'r');
  const srcTiles: Buffer[][] = [];
  try {
    for (let y = 0; y < srcRows; y++) {
      srcTiles.push([]);
      for (let x = 0; x < srcCols; x++) {
        const i = y * cmu.cols + x;
        const buf = Buffer.alloc(cmu.byteCounts[i]);
        await source.read(buf, 0, buf.length, cmu.offsets[i]);
        srcTiles[y].push(buf);
      }
    }
  } finally {
    await source.close();
  }
  const head = `Aperio Image Library v11.2.1 \r\n${width}x${height} [0,0 ${width}x${height}] (${tileSize}x${tileSize})`;
  const props =
    '|AppMag = 20|StripeWidth = 2040|ScanScope ID = MEDSTREAM-BENCH|Filename = bench|MPP = 0.4990|Left = 0|Top = 0|User = medstream-bench';
  const thumb = { width: 1024, height: Math.round((1024 * height) / width) };
  const tex = await texture();
  const shrink = width / thumb.width;
  const thumbTile = await sharp(tex.data, { raw: { width: tex.width, height: tex.height, channels: 3 } })
    .resize(Math.round((srcCols * tileSize) / shrink), Math.round((srcRows * tileSize) / shrink))
    .raw()
    .toBuffer();
  const thumbPixels = await sharp({
    create: { width: thumb.width, height: thumb.height, channels: 3, background: '#ffffff' },
  })
    .composite([
      {
        input: thumbTile,
        raw: {
          width: Math.round((srcCols * tileSize) / shrink),
          height: Math.round((srcRows * tileSize) / shrink),
          channels: 3,
        },
        tile: true,
        gravity: 'northwest',
      },
    ])
    .raw()
    .toBuffer();
  const level = (d: number): TileSpec => {
    const w = Math.floor(width / d);
    const h = Math.floor(height / d);
    return {
      width: w,
      height: h,
      description: d === 1 ? `${head} JPEG/RGB Q=70${props}` : `${head} -> ${w}x${h} JPEG/RGB Q=70`,
      tiles: { cols: Math.ceil(w / tileSize), rows: Math.ceil(h / tileSize) },
    };
  };
  const images: TileSpec[] = [
    level(1),
    { ...thumb, description: `${head} -> ${thumb.width}x${thumb.height} - ${props}`, strip: thumbPixels },
    level(4),
    level(16),
    level(64),
  ];

  const out = await open(tmp, 'w');
  try {
    let pos = 8;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async () => {
      if (pendingBytes === 0) return;
      const chunk = Buffer.concat(pending, pendingBytes);
      await out.write(chunk, 0, chunk.length, pos);
      pos += chunk.length;
      pending = [];
      pendingBytes = 0;
    };
    const append = async (buf: Buffer): Promise<number> => {
      const at = pos + pendingBytes;
      pending.push(buf);
      pendingBytes += buf.length;
      if (pendingBytes >= 8 * 1024 * 1024) await flush();
      return at;
    };
    // Image data first, then the directories (as Aperio's writer does, data before each IFD).
    const placed: { spec: TileSpec; offsets: number[]; counts: number[] }[] = [];
    for (const spec of images) {
      const offsets: number[] = [];
      const counts: number[] = [];
      if (spec.tiles) {
        for (let y = 0; y < spec.tiles.rows; y++)
          for (let x = 0; x < spec.tiles.cols; x++) {
            const tile = srcTiles[y % srcRows][x % srcCols];
            offsets.push(await append(tile));
            counts.push(tile.length);
          }
      } else {
        offsets.push(await append(spec.strip!));
        counts.push(spec.strip!.length);
      }
      placed.push({ spec, offsets, counts });
    }
    const tablesAt = await append(Buffer.from(jpegTables));
    await flush();
    // Directories: classic TIFF, little-endian; out-of-line values right after each IFD.
    const ifdOffsets: number[] = [];
    const ifds: { at: number; bytes: Buffer }[] = [];
    let at = pos + (pos % 2);
    for (const { spec, offsets, counts } of placed) {
      const entries: { tag: number; type: number; values: number[] | Buffer }[] = [
        { tag: 254, type: 4, values: [0] },
        { tag: 256, type: 4, values: [spec.width] },
        { tag: 257, type: 4, values: [spec.height] },
        { tag: 258, type: 3, values: [8, 8, 8] },
        { tag: 259, type: 3, values: [spec.tiles ? 7 : 1] },
        { tag: 262, type: 3, values: [2] },
        { tag: 270, type: 2, values: Buffer.from(`${spec.description}\0`, 'latin1') },
        ...(spec.tiles ? [] : [{ tag: 273, type: 4, values: offsets }]),
        { tag: 277, type: 3, values: [3] },
        ...(spec.tiles
          ? []
          : [
              { tag: 278, type: 4, values: [spec.height] },
              { tag: 279, type: 4, values: counts },
            ]),
        { tag: 284, type: 3, values: [1] },
        ...(spec.tiles
          ? [
              { tag: 322, type: 3, values: [tileSize] },
              { tag: 323, type: 3, values: [tileSize] },
              { tag: 324, type: 4, values: offsets },
              { tag: 325, type: 4, values: counts },
              { tag: 347, type: 7, values: [tablesAt, jpegTables.length] },
            ]
          : []),
      ];
      const ifdSize = 2 + entries.length * 12 + 4;
      const body = Buffer.alloc(ifdSize);
      const extra: Buffer[] = [];
      let extraAt = at + ifdSize;
      body.writeUInt16LE(entries.length, 0);
      entries.forEach((entry, i) => {
        const e = 2 + i * 12;
        body.writeUInt16LE(entry.tag, e);
        if (entry.tag === 347) {
          // JPEGTables: points at the tables written with the data.
          const [offset, length] = entry.values as number[];
          body.writeUInt16LE(7, e + 2);
          body.writeUInt32LE(length, e + 4);
          body.writeUInt32LE(offset, e + 8);
          return;
        }
        body.writeUInt16LE(entry.type, e + 2);
        let value: Buffer;
        if (Buffer.isBuffer(entry.values)) value = entry.values;
        else {
          const size = TYPE_SIZE[entry.type];
          value = Buffer.alloc(size * entry.values.length);
          entry.values.forEach((v, k) =>
            size === 2 ? value.writeUInt16LE(v, k * 2) : value.writeUInt32LE(v, k * 4),
          );
        }
        body.writeUInt32LE(Buffer.isBuffer(entry.values) ? value.length : entry.values.length, e + 4);
        if (value.length <= 4) value.copy(body, e + 8);
        else {
          body.writeUInt32LE(extraAt, e + 8);
          extra.push(value);
          extraAt += value.length + (value.length % 2);
          if (value.length % 2) extra.push(Buffer.alloc(1));
        }
      });
      ifdOffsets.push(at);
      ifds.push({ at, bytes: Buffer.concat([body, ...extra]) });
      at = extraAt;
    }
    ifds.forEach((ifd, i) =>
      ifd.bytes.writeUInt32LE(ifdOffsets[i + 1] ?? 0, 2 + ifd.bytes.readUInt16LE(0) * 12),
    );
    for (const ifd of ifds) await out.write(ifd.bytes, 0, ifd.bytes.length, ifd.at);
    const header = Buffer.alloc(8);
    header.write('II', 0, 'latin1');
    header.writeUInt16LE(42, 2);
    header.writeUInt32LE(ifdOffsets[0], 4);
    await out.write(header, 0, 8, 0);
    if (at > 0xffff_ffff) throw new Error('SVS past 4 GiB: classic TIFF offsets overflow');
  } finally {
    await out.close();
  }
}

/** Generates (or finds in the cache) the bench slides; `big` = false skips the SVS. */
export async function benchSlides(big: boolean): Promise<{ pyramid: BenchSlide; svs?: BenchSlide }> {
  const pyramid = await benchPyramid();
  return big ? { pyramid, svs: await benchSvs() } : { pyramid };
}

// `tsx bench/slides.ts`: generate both and print what was made.
if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const { pyramid, svs } = await benchSlides(true);
  for (const s of [pyramid, svs!]) {
    const levels = await tiledLevels(s.file);
    const counts = levels[0].byteCounts;
    const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
    console.log(
      `${s.id}: ${s.width}x${s.height}, ${levels.length} levels, ${(s.bytes / 2 ** 20).toFixed(0)} MiB, ` +
        `level-0 tile mean ${(mean / 1024).toFixed(1)} KiB, generated in ${s.generatedSeconds.toFixed(1)} s`,
    );
  }
}
