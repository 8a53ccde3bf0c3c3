// Region reads of stored JPEG tiles in one libvips pipeline: the tiles a rectangle touches are
// joined (sharp's `join`), the rectangle extracted and encoded (or written as raw RGB) by a single
// sharp call, instead of one decode per tile, a copy into a canvas and one more call to encode.
// Each sharp call costs ~0.3 ms of main-thread set-up besides its work on libuv's pool, and every
// hop queues behind other requests; a 256×256 region over four tiles went from five calls to one.
// The pixels are those of the per-tile path (libjpeg decodes each tile on its own either way;
// test/tiles/region-join.test.ts compares them). Only the common case is taken: 8-bit 3-sample
// JPEG tiles, full size, all present, the rectangle inside the level; anything else is
// `undefined` and the caller reads the region tile by tile.

import { setMaxListeners } from 'node:events';
import sharp from 'sharp';
import { prepareJpeg } from '../codecs/index.js';
import { Compression, Photometric } from '../codecs/types.js';
import { DecodeError, throwIfAborted } from '../errors.js';
import type { ImageGrid } from '../formats/slide.js';
import { encodePipeline, type EncodeOptions } from './encode.js';

/** Most tiles joined by one pipeline (a 4096×4096 region of 256-px tiles is 17×17). */
const MAX_JOINED_TILES = 400;
/** Largest tile joined (pixels): slides with huge tiles are read tile by tile, a few at a time. */
const MAX_JOINED_TILE_PIXELS = 1024 * 1024;
/** Most stored pixels behind one joined region (the tiles' full area, not just the rectangle). */
const MAX_JOINED_SOURCE_PIXELS = 64 * 1024 * 1024;

/** What to make of the region: an encoded image, or interleaved RGB bytes. */
export type RegionOutput = EncodeOptions | 'raw';

/**
 * The `w`x`h` rectangle at (`x`, `y`) of `grid` (level pixels) as one encoded image, or raw RGB;
 * `undefined` when this path does not apply (see the file comment). Corrupt tiles are
 * `DecodeError`.
 */
export async function joinedRegion(
  grid: ImageGrid,
  x: number,
  y: number,
  w: number,
  h: number,
  output: RegionOutput,
  options: { signal?: AbortSignal; maxPixels: number },
): Promise<Buffer | undefined> {
  const { encoding, tileWidth: tw, tileHeight: th } = grid;
  if (
    encoding.compression !== Compression.JPEG ||
    (grid.layout ?? 'tiles') !== 'tiles' ||
    encoding.samplesPerPixel !== 3 ||
    (encoding.bitsPerSample[0] ?? 8) !== 8 ||
    (encoding.photometric !== Photometric.YCbCr && encoding.photometric !== Photometric.RGB)
  ) {
    return undefined;
  }
  if (x < 0 || y < 0 || w < 1 || h < 1 || x + w > grid.width || y + h > grid.height) return undefined;
  if (w * h > options.maxPixels) return undefined;
  const tx0 = Math.floor(x / tw);
  const ty0 = Math.floor(y / th);
  const across = Math.floor((x + w - 1) / tw) - tx0 + 1;
  const down = Math.floor((y + h - 1) / th) - ty0 + 1;
  if (across * down > MAX_JOINED_TILES || tw * th > MAX_JOINED_TILE_PIXELS) return undefined;
  if (across * down * tw * th > MAX_JOINED_SOURCE_PIXELS) return undefined;
  // Every tile's read listens to the request's signal: many listeners by design, not a leak, so
  // the reads share one derived signal with no listener limit (the caller's keeps its own).
  let signal = options.signal;
  if (signal && across * down > 1) {
    signal = AbortSignal.any([signal]);
    setMaxListeners(0, signal);
  }
  // All reads start in the same tick so the io/ coalescer can merge neighbouring tiles.
  const reads: Promise<Uint8Array | null>[] = [];
  for (let ty = ty0; ty < ty0 + down; ty++)
    for (let tx = tx0; tx < tx0 + across; tx++) reads.push(grid.readTile(tx, ty, { signal }));
  const stored = await Promise.all(reads);
  throwIfAborted(options.signal);
  const streams: Buffer[] = [];
  for (const bytes of stored) {
    if (bytes === null) return undefined; // sparse tile: background, the per-tile path draws it
    const stream = prepareJpeg(bytes, encoding);
    // join lays tiles out on a grid of the largest tile's size: every tile must be exactly full size.
    const size = jpegFrame(stream);
    if (!size || size.width !== tw || size.height !== th || size.components !== 3) return undefined;
    streams.push(Buffer.from(stream.buffer, stream.byteOffset, stream.byteLength));
  }
  let pipeline = sharp(streams.length === 1 ? streams[0] : streams, {
    failOn: 'error',
    ignoreIcc: true,
    limitInputPixels: Math.max(1, across * down * tw * th),
    ...(streams.length > 1 ? { join: { across } } : {}),
  }).extract({ left: x - tx0 * tw, top: y - ty0 * th, width: w, height: h });
  try {
    if (output !== 'raw') return await encodePipeline(pipeline, output);
    pipeline = pipeline.toColourspace('srgb').raw();
    const { data, info } = await pipeline.toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== w || info.height !== h) {
      throw new DecodeError(`joined region came out ${info.width}x${info.height}x${info.channels}`);
    }
    return data;
  } catch (e) {
    if (e instanceof DecodeError) throw e;
    throw new DecodeError(`JPEG data is corrupt: ${(e as Error).message}`, { cause: e });
  }
}

/** The SOF's size and component count of a JPEG stream, or undefined when none is found. */
export function jpegFrame(
  stream: Uint8Array,
): { width: number; height: number; components: number } | undefined {
  let pos = 2;
  while (pos + 4 <= stream.length) {
    if (stream[pos] !== 0xff) return undefined;
    const marker = stream[pos + 1];
    if (marker === 0xff) {
      pos++;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return undefined;
    const length = (stream[pos + 2] << 8) | stream[pos + 3];
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof) {
      if (pos + 10 > stream.length) return undefined;
      return {
        height: (stream[pos + 5] << 8) | stream[pos + 6],
        width: (stream[pos + 7] << 8) | stream[pos + 8],
        components: stream[pos + 9],
      };
    }
    pos += 2 + length;
  }
  return undefined;
}
