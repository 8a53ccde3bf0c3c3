// One TIFF directory interpreted as an image: size, tile or strip layout, encoding (the
// `TileEncoding` the codecs need) and lazy offset/byte-count arrays, all validated; plus the
// `ImageGrid` that hands out its stored tiles. Vendors build levels and associated images from
// these and never touch tags for pixel layout themselves.

import { BadRequest, CorruptFile, UnsupportedFormat } from '../../errors.js';
import { Compression, Photometric, type TileEncoding } from '../../codecs/types.js';
import type { ImageGrid } from '../slide.js';
import { Limits, Tag } from './constants.js';
import type { Ifd } from './ifd.js';
import type { TagArray } from './tag-array.js';
import type { TiffFile } from './tiff-file.js';

/** Compressions some codec decodes (Old-style JPEG, compression 6, is not among them). */
export const SUPPORTED_COMPRESSIONS: ReadonlySet<number> = new Set(
  Object.values(Compression).filter((code) => code !== Compression.OldJPEG),
);

export interface TiffImage {
  ifd: Ifd;
  width: number;
  height: number;
  tiled: boolean;
  /** Tile size, or for strips: the image width and RowsPerStrip. */
  tileWidth: number;
  tileHeight: number;
  tilesX: number;
  tilesY: number;
  /** NewSubfileType (0 when absent). */
  subfileType: number;
  encoding: TileEncoding;
  offsets: TagArray;
  byteCounts: TagArray;
}

export function isTiled(ifd: Ifd): boolean {
  return (
    (ifd.entries.get(Tag.TileWidth)?.count ?? 0) > 0 && (ifd.entries.get(Tag.TileLength)?.count ?? 0) > 0
  );
}

/**
 * Interprets `ifd`. Throws `CorruptFile` for missing or impossible layout tags,
 * `UnsupportedFormat` for a compression no codec handles or a stripped image too large to serve.
 */
export async function readTiffImage(tiff: TiffFile, ifd: Ifd, signal?: AbortSignal): Promise<TiffImage> {
  const where = `${tiff.source.key}: ${ifd.label}`;
  const width = await tiff.number(ifd, Tag.ImageWidth, signal);
  const height = await tiff.number(ifd, Tag.ImageLength, signal);
  checkDimension(where, 'width', width);
  checkDimension(where, 'height', height);

  const tiled = isTiled(ifd);
  let tileWidth: number;
  let tileHeight: number;
  if (tiled) {
    tileWidth = (await tiff.number(ifd, Tag.TileWidth, signal)) ?? 0;
    tileHeight = (await tiff.number(ifd, Tag.TileLength, signal)) ?? 0;
    checkTileSize(where, tileWidth, tileHeight);
  } else {
    if (width * height > Limits.maxStrippedPixels) {
      throw new UnsupportedFormat(
        `${where}: stripped image too large (${width}x${height}; at most ${Limits.maxStrippedPixels} pixels are served untiled)`,
      );
    }
    const rowsPerStrip = (await tiff.number(ifd, Tag.RowsPerStrip, signal)) ?? 2 ** 32 - 1;
    if (!Number.isSafeInteger(rowsPerStrip) || rowsPerStrip < 1) {
      throw new CorruptFile(`${where}: invalid RowsPerStrip ${rowsPerStrip}`);
    }
    tileWidth = width;
    tileHeight = Math.min(rowsPerStrip, height);
  }
  const tilesX = Math.ceil(width / tileWidth);
  const tilesY = Math.ceil(height / tileHeight);

  const encoding = await readEncoding(tiff, ifd, where, signal);
  const samples = encoding.samplesPerPixel;
  const planar = encoding.planarConfiguration;
  // Planar (separate) multi-sample images: plane 0 is served alone, as grayscale, which is what
  // a fluorescence stack needs (its first channel); planar RGB would need all three planes.
  if (planar === 2 && samples > 1) {
    if (encoding.photometric !== Photometric.MinIsBlack && encoding.photometric !== Photometric.MinIsWhite) {
      throw new UnsupportedFormat(`${where}: planar (separate) ${samples}-sample images are not supported`);
    }
    encoding.samplesPerPixel = 1;
    encoding.bitsPerSample = encoding.bitsPerSample.slice(0, 1);
    encoding.planarConfiguration = 1;
    delete encoding.extraSamples;
  }

  const offsetTag = tiled ? Tag.TileOffsets : Tag.StripOffsets;
  const countTag = tiled ? Tag.TileByteCounts : Tag.StripByteCounts;
  const offsets = tiff.array(ifd, offsetTag, tiled ? 'TileOffsets' : 'StripOffsets');
  const byteCounts = tiff.array(ifd, countTag, tiled ? 'TileByteCounts' : 'StripByteCounts');
  if (!offsets || !byteCounts) {
    throw new CorruptFile(
      `${where}: no ${tiled ? 'TileOffsets/TileByteCounts' : 'StripOffsets/StripByteCounts'}`,
    );
  }
  const needed = tilesX * tilesY;
  if (offsets.count < needed || byteCounts.count < needed) {
    throw new CorruptFile(
      `${where}: ${tilesX}x${tilesY} ${tiled ? 'tiles' : 'strips'} need ${needed} offsets and byte counts, ` +
        `found ${offsets.count} and ${byteCounts.count}`,
    );
  }
  const subfileType = (await tiff.number(ifd, Tag.NewSubfileType, signal)) ?? 0;
  return {
    ifd,
    width,
    height,
    tiled,
    tileWidth,
    tileHeight,
    tilesX,
    tilesY,
    subfileType,
    encoding,
    offsets,
    byteCounts,
  };
}

function checkDimension(where: string, name: string, value: number | undefined): asserts value is number {
  if (value === undefined) throw new CorruptFile(`${where}: no image ${name}`);
  if (!Number.isSafeInteger(value) || value < 1 || value > Limits.maxDimension) {
    throw new CorruptFile(`${where}: impossible image ${name} ${value}`);
  }
}

function checkTileSize(where: string, width: number, height: number): void {
  for (const size of [width, height]) {
    if (!Number.isSafeInteger(size) || size < Limits.minTileSize || size > Limits.maxTileSize) {
      throw new CorruptFile(
        `${where}: tile size ${width}x${height} outside ${Limits.minTileSize}..${Limits.maxTileSize}`,
      );
    }
  }
}

async function readEncoding(
  tiff: TiffFile,
  ifd: Ifd,
  where: string,
  signal?: AbortSignal,
): Promise<TileEncoding> {
  const compression = (await tiff.number(ifd, Tag.Compression, signal)) ?? Compression.None;
  if (!SUPPORTED_COMPRESSIONS.has(compression)) {
    throw new UnsupportedFormat(`${where}: unsupported TIFF compression ${compression}`);
  }
  const samplesPerPixel = (await tiff.number(ifd, Tag.SamplesPerPixel, signal)) ?? 1;
  if (!Number.isInteger(samplesPerPixel) || samplesPerPixel < 1 || samplesPerPixel > 16) {
    throw new CorruptFile(`${where}: invalid SamplesPerPixel ${samplesPerPixel}`);
  }
  let bitsPerSample = (await tiff.numbers(ifd, Tag.BitsPerSample, signal)) ?? [1];
  if (bitsPerSample.length < samplesPerPixel) {
    bitsPerSample = Array.from(
      { length: samplesPerPixel },
      (_, i) => bitsPerSample[Math.min(i, bitsPerSample.length - 1)],
    );
  }
  bitsPerSample = bitsPerSample.slice(0, samplesPerPixel);
  if (bitsPerSample.some((bits) => !Number.isInteger(bits) || bits < 1 || bits > 64)) {
    throw new CorruptFile(`${where}: invalid BitsPerSample ${bitsPerSample.join(',')}`);
  }
  const photometric =
    (await tiff.number(ifd, Tag.PhotometricInterpretation, signal)) ??
    (samplesPerPixel >= 3 ? Photometric.RGB : Photometric.MinIsBlack);
  const planarConfiguration = (await tiff.number(ifd, Tag.PlanarConfiguration, signal)) ?? 1;
  if (planarConfiguration !== 1 && planarConfiguration !== 2) {
    throw new CorruptFile(`${where}: invalid PlanarConfiguration ${planarConfiguration}`);
  }
  const encoding: TileEncoding = {
    compression,
    photometric,
    samplesPerPixel,
    bitsPerSample,
    sampleFormat: (await tiff.number(ifd, Tag.SampleFormat, signal)) ?? 1,
    planarConfiguration,
    predictor: (await tiff.number(ifd, Tag.Predictor, signal)) ?? 1,
  };
  if (compression === Compression.JPEG) {
    const tables = await tiff.bytes(ifd, Tag.JPEGTables, signal);
    if (tables) encoding.jpegTables = tables.slice();
  }
  if (photometric === Photometric.YCbCr) {
    const sub = (await tiff.numbers(ifd, Tag.YCbCrSubSampling, signal)) ?? [2, 2];
    encoding.ycbcrSubsampling = [sub[0] ?? 2, sub[1] ?? 2];
  }
  const extra = await tiff.numbers(ifd, Tag.ExtraSamples, signal);
  if (extra) encoding.extraSamples = extra.slice(0, 16);
  return encoding;
}

/** The grid of stored tiles (or strips) of `image`, reading offsets lazily per tile. */
export function tiffImageGrid(tiff: TiffFile, image: TiffImage): ImageGrid {
  const source = tiff.source;
  const where = `${source.key}: ${image.ifd.label}`;
  const { tilesX, tilesY, offsets, byteCounts } = image;
  return {
    width: image.width,
    height: image.height,
    tileWidth: image.tileWidth,
    tileHeight: image.tileHeight,
    tilesX,
    tilesY,
    encoding: image.encoding,
    layout: image.tiled ? 'tiles' : 'strips',
    async readTile(x, y, options) {
      if (!Number.isInteger(x) || !Number.isInteger(y) || x < 0 || y < 0 || x >= tilesX || y >= tilesY) {
        throw new BadRequest(`tile (${x}, ${y}) is outside the ${tilesX}x${tilesY} grid`);
      }
      const signal = options?.signal;
      const index = y * tilesX + x;
      const [offset, length] = await Promise.all([offsets.get(index, signal), byteCounts.get(index, signal)]);
      if (offset === 0 || length === 0) return null;
      if (length > Limits.maxTileBytes) {
        throw new CorruptFile(
          `${where}: tile (${x}, ${y}) claims ${length} bytes (limit ${Limits.maxTileBytes})`,
        );
      }
      if (offset + length > source.size) {
        throw new CorruptFile(
          `${where}: tile (${x}, ${y}) at [${offset}, +${length}) lies outside the file (size ${source.size})`,
        );
      }
      return source.read(offset, length, { purpose: 'data', signal });
    },
  };
}
