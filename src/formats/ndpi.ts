// Hamamatsu NDPI: a TIFF-like file (NDPI's own 64-bit offsets, read by tiff/) whose first
// directory carries tag 65420. Directories with a positive SourceLens (tag 65421) are pyramid
// levels, each one strip holding one large baseline JPEG with restart markers; SourceLens -1 is
// the macro image. Tiles are cut out of a level's JPEG at restart intervals without decoding
// (codecs/jpeg-restart.ts): a tile is a x b intervals, whole intervals across and MCU rows down,
// and `readTile` returns it as a standalone JPEG that passes through to clients as stored.
//
//   interval i starts at McuStarts[i] (tag 65426, + McuStartsHighBytes[i] x 2^32, tag 65432),
//   relative to the strip, read lazily like TileOffsets; without a usable McuStarts, the
//   level's restart markers are found by scanning its entropy-coded data forwards in bounded
//   chunks, once, remembering every position found.
//
// Like OpenSlide 3.4.1 (openslide-vendor-hamamatsu.c), which decodes each JPEG at 1/2, 1/4 and
// 1/8 scale too, the slide also lists those scales where no native level has their size; they
// are synthesised levels here (area-averaged from the native level above). Properties are
// OpenSlide's `hamamatsu.*`; MPP comes from X/YResolution in centimetres.

import {
  assembleRestartJpeg,
  endsWithEoi,
  isRestartMarker,
  parseRestartJpegHeader,
  scanRestartMarkers,
  withFrameSize,
  type RestartJpegHeader,
} from '../codecs/jpeg-restart.js';
import { Compression, Photometric, type TileEncoding } from '../codecs/types.js';
import { BadRequest, CorruptFile, DecodeError, UnsupportedFormat, throwIfAborted } from '../errors.js';
import type { ByteSource } from '../storage/types.js';
import type { OpenSlideOptions, SlideProbe } from './format.js';
import { slideOf } from './levels.js';
import type { ImageGrid, Slide, SlideLevel, SlideProperties } from './slide.js';
import { iccProfile, ignoreCorrupt, resolutionMpp, tiffProperties } from './tiff-properties.js';
import { Limits, Tag } from './tiff/constants.js';
import type { Ifd } from './tiff/ifd.js';
import type { TagArray } from './tiff/tag-array.js';
import type { TiffFile } from './tiff/tiff-file.js';

export const vendor = 'hamamatsu';

/** NDPI's private tags (names as in OpenSlide and tifffile). */
export const NdpiTag = {
  FormatFlag: 65420,
  SourceLens: 65421,
  XOffsetFromSlideCentre: 65422,
  YOffsetFromSlideCentre: 65423,
  FocalPlane: 65424,
  McuStarts: 65426,
  Reference: 65427,
  McuStartsHighBytes: 65432,
  PropertyMap: 65449,
} as const;

/** Tiles aim at about this many pixels a side (whole restart intervals across, MCU rows down). */
const TILE_TARGET = 512;
/** JPEG headers are read with this much first (NDPI's are ~700 bytes), then at most HEADER_MAX. */
const HEADER_PROBE = 4096;
const HEADER_MAX = 64 * 1024;
/** Bytes read per request when scanning for restart markers. */
const SCAN_CHUNK = 1024 * 1024;
/** Tile size reported by the synthesised 1/2, 1/4, 1/8 scale levels. */
const SYNTHESISED_TILE = 256;

export async function detect(probe: SlideProbe): Promise<boolean> {
  const tiff = await probe.head();
  return tiff !== null && tiff.has(tiff.ifds[0], NdpiTag.FormatFlag);
}

/**
 * Level 0 when the first directory is it (a pyramid level, SourceLens > 0, of focal plane 0:
 * `open` then takes it as the first native level); else undefined.
 */
export async function openBase(
  probe: SlideProbe,
  options: OpenSlideOptions = {},
): Promise<ImageGrid | undefined> {
  const tiff = await probe.head();
  if (!tiff) return undefined;
  const signal = options.signal ?? probe.signal;
  const first = tiff.ifds[0];
  const lens = await tiff.number(first, NdpiTag.SourceLens, signal).catch(ignoreCorrupt);
  const focalPlane = (await tiff.number(first, NdpiTag.FocalPlane, signal).catch(ignoreCorrupt)) ?? 0;
  if (lens === undefined || !Number.isFinite(lens) || lens <= 0 || focalPlane !== 0) return undefined;
  probe.baseGrid = await ndpiJpegGrid(tiff, first, signal);
  return probe.baseGrid;
}

export async function open(probe: SlideProbe, options: OpenSlideOptions = {}): Promise<Slide> {
  const signal = options.signal ?? probe.signal;
  const tiff = await probe.tiff(signal);
  if (!tiff) throw new UnsupportedFormat(`${probe.source.key}: not a TIFF file`);
  const key = probe.source.key;

  const natives: ImageGrid[] = [];
  const associated = new Map<string, ImageGrid>();
  for (const ifd of tiff.ifds) {
    const lens = await tiff.number(ifd, NdpiTag.SourceLens, signal).catch(ignoreCorrupt);
    if (lens === undefined || !Number.isFinite(lens)) continue;
    if (lens > 0) {
      // Other focal planes of a z-stack are not levels (as in OpenSlide).
      const focalPlane = (await tiff.number(ifd, NdpiTag.FocalPlane, signal).catch(ignoreCorrupt)) ?? 0;
      if (focalPlane !== 0) continue;
      const reused = ifd === tiff.ifds[0] ? probe.baseGrid : undefined;
      const grid = reused ?? (await ndpiJpegGrid(tiff, ifd, signal));
      const previous = natives.at(-1);
      if (previous && (grid.width >= previous.width || grid.height >= previous.height)) {
        throw new CorruptFile(
          `${key}: ${ifd.label} (${grid.width}x${grid.height}) is not smaller than the level before it`,
        );
      }
      natives.push(grid);
    } else if (lens === -1 && !associated.has('macro')) {
      // The macro is an extra: a broken one is left out and the slide still opens.
      const macro = await ndpiJpegGrid(tiff, ifd, signal).catch((error: unknown) => {
        if (error instanceof CorruptFile || error instanceof UnsupportedFormat) return undefined;
        throw error;
      });
      if (macro) associated.set('macro', macro);
    }
  }
  // The NDPI flag without a single NDPI level (SourceLens > 0): not an NDPI MedStream can read.
  if (natives.length === 0) throw new UnsupportedFormat(`${key}: NDPI file has no pyramid levels`);

  const levels = ndpiLevels(natives);
  return slideOf(vendor, probe.source, levels, associated, await ndpiProperties(tiff, tiff.ifds[0], signal));
}

/**
 * The native levels plus OpenSlide's scaled ones: each native level at 1/2, 1/4 and 1/8 (sizes
 * rounded up, as libjpeg's scaled decoding gives them) wherever no larger-scale candidate has
 * that size already, finest first.
 */
function ndpiLevels(natives: readonly ImageGrid[]): SlideLevel[] {
  const candidates = natives.flatMap((grid) =>
    [1, 2, 4, 8].map((scale) => ({
      width: Math.ceil(grid.width / scale),
      height: Math.ceil(grid.height / scale),
      grid: scale === 1 ? grid : null,
    })),
  );
  candidates.sort((p, q) => q.width - p.width || q.height - p.height || (p.grid ? -1 : q.grid ? 1 : 0));
  const base = natives[0];
  const levels: SlideLevel[] = [];
  for (const candidate of candidates) {
    const last = levels.at(-1);
    if (last && (candidate.width >= last.width || candidate.height >= last.height)) continue;
    const { width, height, grid } = candidate;
    const tileWidth = grid?.tileWidth ?? SYNTHESISED_TILE;
    const tileHeight = grid?.tileHeight ?? SYNTHESISED_TILE;
    levels.push({
      index: levels.length,
      width,
      height,
      downsample: (base.width / width + base.height / height) / 2,
      tileWidth,
      tileHeight,
      tilesX: Math.ceil(width / tileWidth),
      tilesY: Math.ceil(height / tileHeight),
      grid,
    });
  }
  return levels;
}

/** `tiff.*` of the first directory, `hamamatsu.*` as OpenSlide names them, MPP and objective. */
async function ndpiProperties(
  tiff: TiffFile,
  ifd: Ifd,
  signal: AbortSignal | undefined,
): Promise<SlideProperties> {
  const raw = await tiffProperties(tiff, ifd, signal);
  const number = (tag: number) => tiff.number(ifd, tag, signal).catch(ignoreCorrupt);
  const lens = await number(NdpiTag.SourceLens);
  if (lens !== undefined && Number.isFinite(lens)) raw['hamamatsu.SourceLens'] = String(lens);
  for (const [name, tag] of [
    ['hamamatsu.XOffsetFromSlideCentre', NdpiTag.XOffsetFromSlideCentre],
    ['hamamatsu.YOffsetFromSlideCentre', NdpiTag.YOffsetFromSlideCentre],
  ] as const) {
    const value = await number(tag);
    if (value !== undefined && Number.isSafeInteger(value)) raw[name] = String(value);
  }
  const reference = await tiff.string(ifd, NdpiTag.Reference, signal).catch(ignoreCorrupt);
  if (reference !== undefined) raw['hamamatsu.Reference'] = reference;
  // The property map: CRLF-separated `key=value` records; empty keys or values are skipped.
  const map = await tiff.string(ifd, NdpiTag.PropertyMap, signal).catch(ignoreCorrupt);
  for (const record of map?.split('\r\n') ?? []) {
    const eq = record.indexOf('=');
    if (eq > 0 && eq < record.length - 1) raw[`hamamatsu.${record.slice(0, eq)}`] = record.slice(eq + 1);
  }

  const properties: SlideProperties = {
    vendor,
    background_color: 'FFFFFF',
    raw,
    ...(await resolutionMpp(tiff, ifd, signal)),
  };
  if (lens !== undefined && Number.isFinite(lens) && lens > 0) properties.objective_power = lens;
  const icc = await iccProfile(tiff, ifd, signal);
  if (icc) properties.icc_profile = icc;
  return properties;
}

/** Where one NDPI image's JPEG lies and what its header says. */
interface NdpiJpeg {
  where: string;
  source: ByteSource;
  width: number;
  height: number;
  stripOffset: number;
  stripBytes: number;
  header: RestartJpegHeader;
  headerBytes: Uint8Array;
  encoding: TileEncoding;
}

/**
 * The grid of one NDPI directory's JPEG: cut at restart intervals when it has them, else one
 * tile (the whole JPEG, when small enough to decode). Throws `CorruptFile` for a broken strip or
 * JPEG header, `UnsupportedFormat` for what no tile can be cut from.
 */
export async function ndpiJpegGrid(tiff: TiffFile, ifd: Ifd, signal?: AbortSignal): Promise<ImageGrid> {
  const jpeg = await readNdpiJpeg(tiff, ifd, signal);
  if (jpeg.header.restartInterval === 0) return wholeJpegGrid(jpeg);
  const mcuStarts = mcuStartsIndex(tiff, ifd, jpeg);
  return restartGrid(jpeg, mcuStarts ?? new RestartScanIndex(jpeg, intervalCount(jpeg)));
}

async function readNdpiJpeg(tiff: TiffFile, ifd: Ifd, signal: AbortSignal | undefined): Promise<NdpiJpeg> {
  const source = tiff.source;
  const where = `${source.key}: ${ifd.label}`;
  const width = await tiff.number(ifd, Tag.ImageWidth, signal);
  const height = await tiff.number(ifd, Tag.ImageLength, signal);
  for (const [name, value] of [
    ['width', width],
    ['height', height],
  ] as const) {
    if (value === undefined || !Number.isSafeInteger(value) || value < 1 || value > Limits.maxDimension) {
      throw new CorruptFile(`${where}: impossible image ${name} ${value}`);
    }
  }
  const w = width as number;
  const h = height as number;
  const compression = (await tiff.number(ifd, Tag.Compression, signal)) ?? Compression.None;
  if (compression !== Compression.JPEG) {
    throw new UnsupportedFormat(`${where}: NDPI image with compression ${compression}, not JPEG`);
  }
  if (tiff.entry(ifd, Tag.StripOffsets)?.count !== 1 || tiff.entry(ifd, Tag.StripByteCounts)?.count !== 1) {
    throw new CorruptFile(`${where}: an NDPI image must be one strip`);
  }
  const stripOffset = (await tiff.number(ifd, Tag.StripOffsets, signal)) ?? 0;
  const stripBytes = (await tiff.number(ifd, Tag.StripByteCounts, signal)) ?? 0;
  if (
    !Number.isSafeInteger(stripOffset) ||
    !Number.isSafeInteger(stripBytes) ||
    stripOffset <= 0 ||
    stripBytes < 4 ||
    stripOffset + stripBytes > source.size
  ) {
    throw new CorruptFile(
      `${where}: JPEG strip at [${stripOffset}, +${stripBytes}) lies outside the file (size ${source.size})`,
    );
  }

  let header: RestartJpegHeader | undefined;
  let headerBytes: Uint8Array = new Uint8Array(0);
  for (const length of [HEADER_PROBE, HEADER_MAX]) {
    const want = Math.min(length, stripBytes);
    if (want <= headerBytes.length) break;
    // Through the open's metadata windows: a level's JPEG starts right after the directory
    // before it, so its header is usually read already.
    headerBytes = await tiff.reader.read(stripOffset, want, `${ifd.label} JPEG header`, {
      signal,
      readAhead: 0,
    });
    try {
      header = parseRestartJpegHeader(headerBytes);
    } catch (error) {
      if (error instanceof DecodeError) throw new CorruptFile(`${where}: ${error.message}`, { cause: error });
      throw error;
    }
    if (header) break;
  }
  if (!header) throw new CorruptFile(`${where}: JPEG header does not end within ${HEADER_MAX} bytes`);
  if (header.precision !== 8)
    throw new UnsupportedFormat(`${where}: ${header.precision}-bit JPEG is not supported`);
  if (header.components !== 1 && header.components !== 3) {
    throw new UnsupportedFormat(`${where}: JPEG with ${header.components} components is not supported`);
  }
  // Frames over 65 535 pixels cannot say their size (NDPI writes 0 or the size modulo 2^16);
  // otherwise a frame that disagrees with the directory is the wrong JPEG.
  if (w <= 0xffff && h <= 0xffff && (header.width !== w || header.height !== h)) {
    throw new CorruptFile(
      `${where}: JPEG dimension mismatch: the directory says ${w}x${h}, the JPEG ${header.width}x${header.height}`,
    );
  }
  const encoding: TileEncoding = {
    compression: Compression.JPEG,
    photometric: header.components === 3 ? Photometric.YCbCr : Photometric.MinIsBlack,
    samplesPerPixel: header.components,
    bitsPerSample: new Array<number>(header.components).fill(8),
    sampleFormat: 1,
    planarConfiguration: 1,
    predictor: 1,
  };
  return {
    where,
    source,
    width: w,
    height: h,
    stripOffset,
    stripBytes,
    header,
    headerBytes: headerBytes.slice(0, header.length),
    encoding,
  };
}

/** A JPEG without restart markers: one tile, the stream as stored. */
function wholeJpegGrid(jpeg: NdpiJpeg): ImageGrid {
  const { where, width, height } = jpeg;
  if (width > 0xffff || height > 0xffff || width * height > Limits.maxStrippedPixels) {
    throw new UnsupportedFormat(
      `${where}: ${width}x${height} JPEG without restart markers is too large to serve (at most ${Limits.maxStrippedPixels} pixels)`,
    );
  }
  if (jpeg.stripBytes > Limits.maxTileBytes) {
    throw new CorruptFile(`${where}: JPEG of ${jpeg.stripBytes} bytes (limit ${Limits.maxTileBytes})`);
  }
  return {
    width,
    height,
    tileWidth: width,
    tileHeight: height,
    tilesX: 1,
    tilesY: 1,
    encoding: jpeg.encoding,
    layout: 'tiles',
    async readTile(x, y, options) {
      if (x !== 0 || y !== 0) throw new BadRequest(`tile (${x}, ${y}) is outside the 1x1 grid`);
      return jpeg.source.read(jpeg.stripOffset, jpeg.stripBytes, {
        purpose: 'data',
        signal: options?.signal,
      });
    },
  };
}

/** Restart intervals of a level: `across` per MCU row, `rows` MCU rows. */
function intervalLayout(jpeg: NdpiJpeg): { across: number; rows: number; intervalWidth: number } {
  const { header, where } = jpeg;
  const mcusPerRow = Math.ceil(jpeg.width / header.mcuWidth);
  if (mcusPerRow % header.restartInterval !== 0) {
    throw new UnsupportedFormat(
      `${where}: restart interval of ${header.restartInterval} MCUs does not divide the ${mcusPerRow} MCUs of a row`,
    );
  }
  const intervalWidth = header.restartInterval * header.mcuWidth;
  if (intervalWidth > 0xffff) {
    throw new UnsupportedFormat(
      `${where}: restart intervals ${intervalWidth} pixels wide cannot be cut into tiles`,
    );
  }
  return {
    across: mcusPerRow / header.restartInterval,
    rows: Math.ceil(jpeg.height / header.mcuHeight),
    intervalWidth,
  };
}

function intervalCount(jpeg: NdpiJpeg): number {
  const { across, rows } = intervalLayout(jpeg);
  return across * rows;
}

/** Where restart interval `i` starts in the strip (`i` = the interval count: the strip's end). */
interface IntervalIndex {
  start(i: number, signal?: AbortSignal): Promise<number>;
}

/** McuStarts (and its high bytes) as an `IntervalIndex`, or undefined when it is absent or unusable. */
function mcuStartsIndex(tiff: TiffFile, ifd: Ifd, jpeg: NdpiJpeg): IntervalIndex | undefined {
  const count = intervalCount(jpeg);
  let low: TagArray | undefined;
  let high: TagArray | undefined;
  try {
    low = tiff.array(ifd, NdpiTag.McuStarts, 'McuStarts');
    high = tiff.array(ifd, NdpiTag.McuStartsHighBytes, 'McuStartsHighBytes');
  } catch (error) {
    // An array outside the file (or of a non-integer type): scan for the markers instead.
    if (error instanceof CorruptFile) return undefined;
    throw error;
  }
  if (!low || low.count !== count) return undefined;
  const highBytes = high?.count === count ? high : undefined;
  const { where, stripBytes, header } = jpeg;
  return {
    async start(i, signal) {
      if (i === 0) return header.length;
      if (i === count) return stripBytes;
      const [lo, hi] = await Promise.all([low.get(i, signal), highBytes?.get(i, signal) ?? 0]);
      const value = lo + hi * 2 ** 32;
      if (value <= header.length || value >= stripBytes) {
        throw new CorruptFile(
          `${where}: McuStarts[${i}] = ${value} points outside the level's JPEG data [${header.length}, ${stripBytes})`,
        );
      }
      return value;
    },
  };
}

/**
 * Restart-marker positions found by scanning the strip forwards from its entropy-coded data,
 * one bounded chunk per request, remembered for every later tile: a tile costs the scan up to
 * its own intervals once, and nothing after that. One scan runs at a time per level.
 */
class RestartScanIndex implements IntervalIndex {
  private readonly starts: Float64Array;
  /** Intervals 0..known have known starts. */
  private known = 0;
  /** Strip offset the next chunk is scanned from. */
  private cursor: number;
  private scanning: Promise<void> | undefined;
  private failure: unknown;

  constructor(
    private readonly jpeg: NdpiJpeg,
    private readonly count: number,
  ) {
    this.starts = new Float64Array(count + 1).fill(-1);
    this.starts[0] = jpeg.header.length;
    this.starts[count] = jpeg.stripBytes;
    this.cursor = jpeg.header.length;
  }

  async start(i: number, signal?: AbortSignal): Promise<number> {
    while (i < this.count && this.known < i) {
      if (this.failure !== undefined) throw this.failure;
      // Shared by every waiting tile, so it is not cancelled by any one of them.
      this.scanning ??= this.scanChunk()
        .catch((error: unknown) => {
          this.failure = error;
        })
        .finally(() => {
          this.scanning = undefined;
        });
      await this.scanning;
      throwIfAborted(signal);
    }
    if (this.failure !== undefined && this.known < i && i < this.count) throw this.failure;
    return this.starts[i];
  }

  private async scanChunk(): Promise<void> {
    const { jpeg } = this;
    const length = Math.min(SCAN_CHUNK, jpeg.stripBytes - this.cursor);
    if (length <= 0) {
      throw new DecodeError(
        `${jpeg.where}: the JPEG ends after ${this.known + 1} of ${this.count} restart intervals`,
      );
    }
    const chunk = await jpeg.source.read(jpeg.stripOffset + this.cursor, length, { purpose: 'data' });
    const { events, consumed } = scanRestartMarkers(chunk, this.cursor, this.count - 1 - this.known);
    for (const event of events) {
      if (event.kind === 'end') {
        throw new DecodeError(
          `${jpeg.where}: the JPEG ends after ${this.known + 1} of ${this.count} restart intervals`,
        );
      }
      if (event.n !== this.known % 8) {
        throw new DecodeError(
          `${jpeg.where}: restart marker RST${event.n} where RST${this.known % 8} belongs (interval ${this.known + 1})`,
        );
      }
      this.starts[++this.known] = event.next;
    }
    // A trailing FF is left for the next chunk, which then starts with it; a strip that ends
    // in one has no further markers.
    if (consumed === 0) {
      throw new DecodeError(
        `${jpeg.where}: the JPEG ends after ${this.known + 1} of ${this.count} restart intervals`,
      );
    }
    this.cursor += consumed;
  }
}

/** A level cut into tiles of `a` x `b` restart intervals. */
function restartGrid(jpeg: NdpiJpeg, index: IntervalIndex): ImageGrid {
  const { where, width, height, header, source, stripOffset, stripBytes } = jpeg;
  const { across, rows, intervalWidth } = intervalLayout(jpeg);
  const count = across * rows;
  const a = Math.min(across, Math.max(1, Math.floor(TILE_TARGET / intervalWidth)));
  const b = Math.min(
    rows,
    Math.floor(0xffff / header.mcuHeight),
    Math.max(1, Math.floor((TILE_TARGET * TILE_TARGET) / (a * intervalWidth * header.mcuHeight))),
  );
  const tileWidth = Math.min(a * intervalWidth, width);
  const tileHeight = Math.min(b * header.mcuHeight, height);
  const tilesX = Math.ceil(width / tileWidth);
  const tilesY = Math.ceil(height / tileHeight);

  return {
    width,
    height,
    tileWidth,
    tileHeight,
    tilesX,
    tilesY,
    encoding: jpeg.encoding,
    layout: 'tiles',
    async readTile(x, y, options) {
      if (!Number.isInteger(x) || !Number.isInteger(y) || x < 0 || y < 0 || x >= tilesX || y >= tilesY) {
        throw new BadRequest(`tile (${x}, ${y}) is outside the ${tilesX}x${tilesY} grid`);
      }
      const signal = options?.signal;
      const c0 = x * a;
      const c1 = Math.min(across, c0 + a);
      const u0 = y * b;
      const u1 = Math.min(rows, u0 + b);
      // Per MCU row of the tile: the starts of its intervals and of the one after the last.
      const bounds = await Promise.all(
        range(u0, u1).map((u) =>
          Promise.all(range(c0, c1 + 1).map((c) => index.start(u * across + c, signal))),
        ),
      );
      for (const [r, row] of bounds.entries()) {
        for (let k = 1; k < row.length; k++) {
          if (!(row[k] > row[k - 1] + 2 || (row[k] === stripBytes && row[k] > row[k - 1]))) {
            throw new CorruptFile(
              `${where}: restart interval ${(u0 + r) * across + c0 + k - 1} has no data (starts ${row[k - 1]}, next ${row[k]})`,
            );
          }
        }
      }
      // Whole MCU rows are contiguous in the strip: one read; otherwise one read per row, all
      // issued together so that the io/ coalescer can merge what lies close.
      const whole = c0 === 0 && c1 === across;
      const runs = whole
        ? [{ from: bounds[0][0], to: bounds[bounds.length - 1][c1 - c0] }]
        : bounds.map((row) => ({ from: row[0], to: row[row.length - 1] }));
      const total = runs.reduce((sum, run) => sum + run.to - run.from, 0);
      if (total > Limits.maxTileBytes) {
        throw new CorruptFile(
          `${where}: tile (${x}, ${y}) spans ${total} bytes (limit ${Limits.maxTileBytes})`,
        );
      }
      const data = await Promise.all(
        runs.map((run) =>
          source.read(stripOffset + run.from, run.to - run.from, { purpose: 'data', signal }),
        ),
      );
      const intervals: Uint8Array[] = [];
      for (const [r, row] of bounds.entries()) {
        const run = whole ? 0 : r;
        const base = runs[run].from;
        for (let k = 0; k + 1 < row.length; k++) {
          const i = (u0 + r) * across + c0 + k;
          let bytes = data[run].subarray(row[k] - base, row[k + 1] - base);
          if (i === count - 1) {
            if (endsWithEoi(bytes)) bytes = bytes.subarray(0, bytes.length - 2);
          } else if (isRestartMarker(bytes, bytes.length - 2, i)) {
            bytes = bytes.subarray(0, bytes.length - 2);
          } else {
            throw new DecodeError(
              `${where}: no restart marker RST${i % 8} before interval ${i + 1} at byte ${stripOffset + row[k + 1] - 2}`,
            );
          }
          intervals.push(bytes);
        }
      }
      const frame = withFrameSize(
        jpeg.headerBytes,
        header,
        Math.min(tileWidth, width - x * tileWidth),
        Math.min(tileHeight, height - y * tileHeight),
      );
      return assembleRestartJpeg(frame, intervals);
    },
  };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}
