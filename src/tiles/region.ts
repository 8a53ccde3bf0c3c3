// Region reads: the RGB pixels of any rectangle of any level, like OpenSlide's read_region
// composited on the background colour. Native levels are assembled from their decoded tiles
// (edge tiles cropped, missing tiles and the area outside the image left as background);
// synthesised levels (grid === null) are area-averaged from the nearest finer native level,
// reading only the source rectangle needed, in bands of tile rows so memory stays bounded.
//
//   readRegion -> readNative(grid) -> grid.readTile (all at once, for range coalescing)
//                                  -> codecs.decodeTile (a few at a time) -> composite

import { setMaxListeners } from 'node:events';
import os from 'node:os';
import type { Codecs } from '../codecs/index.js';
import type { DecodedImage } from '../codecs/types.js';
import { BadRequest, CorruptFile, throwIfAborted } from '../errors.js';
import type { ImageGrid, Slide, SlideLevel } from '../formats/slide.js';
import { footprints, resampleRows } from './box-resample.js';
import { composite, filled, parseBackground } from './composite.js';
import type { Rgb } from './composite.js';
import type { RequestTimings } from './timings.js';

export interface RegionOptions {
  signal?: AbortSignal;
  /** Background as `RRGGBB`; default the slide's `background_color` (white). */
  background?: string;
  /** Largest `w * h` served (default 64 Mi pixels); larger requests are `BadRequest`. */
  maxPixels?: number;
  /** Most finer-level pixels read to synthesise one region (default 256 Mi). */
  maxSourcePixels?: number;
  /** Tile decodes in flight at once for this call (default twice the CPU count). */
  decodeConcurrency?: number;
  /** Accumulates storage and decode time (the Server-Timing header). */
  timings?: RequestTimings;
}

/** The part of the codecs a region read needs. */
export type TileDecoder = Pick<Codecs, 'decodeTile'>;

export const DEFAULT_MAX_REGION_PIXELS = 64 * 1024 * 1024;
const DEFAULT_MAX_SOURCE_PIXELS = 256 * 1024 * 1024;
/** Source pixels read per band when synthesising (bounds the band buffer to ~48 MiB). */
const BAND_PIXELS = 16 * 1024 * 1024;

interface ReadContext {
  codecs: TileDecoder;
  background: Rgb;
  signal: AbortSignal | undefined;
  concurrency: number;
  maxSourcePixels: number;
  timings: RequestTimings | undefined;
}

/**
 * Reads `w`x`h` pixels at (`x`, `y`) of level `level`, in that level's own pixel coordinates
 * (OpenSlide's read_region takes level-0 coordinates instead). Returns 3-channel RGB.
 * Throws `BadRequest` for a bad level or size, `DecodeError`/`CorruptFile` for broken tiles.
 */
export async function readRegion(
  slide: Slide,
  codecs: TileDecoder,
  level: number,
  x: number,
  y: number,
  w: number,
  h: number,
  options: RegionOptions = {},
): Promise<DecodedImage> {
  if (!Number.isInteger(level) || level < 0 || level >= slide.levels.length) {
    throw new BadRequest(`level ${level} does not exist (the slide has ${slide.levels.length})`);
  }
  const context = prepare(codecs, x, y, w, h, options, slide.properties.background_color);
  const target = slide.levels[level];
  const data = target.grid
    ? await readNative(target.grid, x, y, w, h, context)
    : await readSynthesised(slide, target, x, y, w, h, context);
  return { data, width: w, height: h, channels: 3 };
}

/**
 * Reads `w`x`h` pixels at (`x`, `y`) of one stored grid (an associated image such as `label` or
 * `macro`, or a level's grid), composited on `options.background` (white by default). RGB.
 */
export async function readGrid(
  grid: ImageGrid,
  codecs: TileDecoder,
  x: number,
  y: number,
  w: number,
  h: number,
  options: RegionOptions = {},
): Promise<DecodedImage> {
  const context = prepare(codecs, x, y, w, h, options, undefined);
  return { data: await readNative(grid, x, y, w, h, context), width: w, height: h, channels: 3 };
}

/** Validates a request (`BadRequest`) and builds the per-call context. */
function prepare(
  codecs: TileDecoder,
  x: number,
  y: number,
  w: number,
  h: number,
  options: RegionOptions,
  slideBackground: string | undefined,
): ReadContext {
  for (const [name, value] of [
    ['x', x],
    ['y', y],
  ] as const) {
    if (!Number.isSafeInteger(value)) throw new BadRequest(`${name} must be an integer, got ${value}`);
  }
  if (!Number.isSafeInteger(w) || !Number.isSafeInteger(h) || w < 1 || h < 1) {
    throw new BadRequest(`region size must be positive integers, got ${w}x${h}`);
  }
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_REGION_PIXELS;
  if (w * h > maxPixels) {
    throw new BadRequest(`region of ${w}x${h} exceeds the limit of ${maxPixels} pixels`);
  }
  throwIfAborted(options.signal);
  return {
    codecs,
    background: parseBackground(options.background ?? slideBackground),
    signal: options.signal,
    concurrency: Math.max(1, options.decodeConcurrency ?? os.availableParallelism() * 2),
    maxSourcePixels: options.maxSourcePixels ?? DEFAULT_MAX_SOURCE_PIXELS,
    timings: options.timings,
  };
}

/** Pixels [x, x+w) x [y, y+h) of a stored grid, composited on the background. */
async function readNative(
  grid: ImageGrid,
  x: number,
  y: number,
  w: number,
  h: number,
  context: ReadContext,
): Promise<Uint8Array> {
  const out = filled(w, h, context.background);
  const x0 = Math.max(x, 0);
  const y0 = Math.max(y, 0);
  const x1 = Math.min(x + w, grid.width);
  const y1 = Math.min(y + h, grid.height);
  if (x0 >= x1 || y0 >= y1) return out;

  const { tileWidth: tw, tileHeight: th } = grid;
  const tiles: { tx: number; ty: number }[] = [];
  for (let ty = Math.floor(y0 / th); ty <= Math.floor((y1 - 1) / th) && ty < grid.tilesY; ty++) {
    for (let tx = Math.floor(x0 / tw); tx <= Math.floor((x1 - 1) / tw) && tx < grid.tilesX; tx++) {
      tiles.push({ tx, ty });
    }
  }

  // One failing tile abandons the others' reads and decodes.
  const failure = new AbortController();
  const signal = context.signal ? AbortSignal.any([context.signal, failure.signal]) : failure.signal;
  // Every tile's read and decode listens to it: many listeners by design, not a leak.
  setMaxListeners(0, signal);
  // All reads start in the same tick so the io/ coalescer can merge neighbouring tiles.
  const readsStarted = performance.now();
  let lastRead = readsStarted;
  const reads = tiles.map(({ tx, ty }) =>
    grid.readTile(tx, ty, { signal }).then((bytes) => {
      lastRead = performance.now();
      return bytes;
    }),
  );
  for (const read of reads) read.catch(() => undefined); // failures surface through the loop below

  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tiles.length) {
      const index = next++;
      const { tx, ty } = tiles[index];
      const bytes = await reads[index];
      if (bytes === null) continue; // sparse tile: background
      // The last strip of a stripped image holds only the rows that remain.
      const rows = grid.layout === 'strips' && ty === grid.tilesY - 1 ? grid.height - ty * th : th;
      const decodeStarted = performance.now();
      const tile = await context.codecs.decodeTile(bytes, grid.encoding, tw, rows, { signal });
      context.timings?.add('decode', performance.now() - decodeStarted);
      composite(out, w, x, y, tile, tx * tw, ty * th, x0, y0, x1, y1, context.background);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(context.concurrency, tiles.length) }, worker));
  } catch (e) {
    failure.abort(e);
    throw e;
  }
  throwIfAborted(context.signal);
  context.timings?.add('storage', lastRead - readsStarted);
  return out;
}

/**
 * A region of a level without stored tiles: box-filtered from the nearest finer native level.
 * Output pixel (i, j) covers source [i * sx, (i+1) * sx) x [j * sy, (j+1) * sy) with sx, sy the
 * size ratios of the two levels, so the level's full extent maps onto the source's.
 */
async function readSynthesised(
  slide: Slide,
  target: SlideLevel,
  x: number,
  y: number,
  w: number,
  h: number,
  context: ReadContext,
): Promise<Uint8Array> {
  const source = finerNativeLevel(slide, target);
  const grid = source.grid as ImageGrid;
  const out = filled(w, h, context.background);
  const x0 = Math.max(x, 0);
  const y0 = Math.max(y, 0);
  const x1 = Math.min(x + w, target.width);
  const y1 = Math.min(y + h, target.height);
  if (x0 >= x1 || y0 >= y1) return out;

  const scaleX = source.width / target.width;
  const scaleY = source.height / target.height;
  const sx0 = Math.floor(x0 * scaleX);
  const sx1 = Math.min(source.width, Math.ceil(x1 * scaleX));
  const sy0 = Math.floor(y0 * scaleY);
  const sy1 = Math.min(source.height, Math.ceil(y1 * scaleY));
  const sourceWidth = sx1 - sx0;
  if (sourceWidth * (sy1 - sy0) > context.maxSourcePixels) {
    throw new BadRequest(
      `synthesising ${w}x${h} at level ${target.index} needs ${sourceWidth}x${sy1 - sy0} pixels of level ` +
        `${source.index}, more than the limit of ${context.maxSourcePixels}`,
    );
  }

  const outWidth = x1 - x0;
  const outHeight = y1 - y0;
  const columns = footprints(x0, outWidth, scaleX, sx0, sx1);
  const rows = footprints(y0, outHeight, scaleY, sy0, sy1);
  const sums = new Float32Array(outWidth * outHeight * 3);

  // Bands are whole tile rows of the source, so each stored tile is decoded exactly once.
  const tileRows = Math.max(1, Math.floor(BAND_PIXELS / (sourceWidth * grid.tileHeight)));
  const bandHeight = tileRows * grid.tileHeight;
  for (let bandTop = sy0; bandTop < sy1; bandTop = (Math.floor(bandTop / bandHeight) + 1) * bandHeight) {
    const bandBottom = Math.min(sy1, (Math.floor(bandTop / bandHeight) + 1) * bandHeight);
    const band = await readNative(grid, sx0, bandTop, sourceWidth, bandBottom - bandTop, context);
    const resampled = resampleRows(band, sourceWidth, bandBottom - bandTop, columns);
    // Add each band row's share to every output row whose footprint contains it.
    for (let oy = 0; oy < outHeight; oy++) {
      const { first, weights } = rows[oy];
      const from = Math.max(first, bandTop - sy0);
      const to = Math.min(first + weights.length, bandBottom - sy0);
      for (let sy = from; sy < to; sy++) {
        const weight = weights[sy - first];
        const src = (sy - (bandTop - sy0)) * outWidth * 3;
        const dst = oy * outWidth * 3;
        for (let i = 0; i < outWidth * 3; i++) sums[dst + i] += resampled[src + i] * weight;
      }
    }
  }
  for (let oy = 0; oy < outHeight; oy++) {
    const o = ((oy + y0 - y) * w + (x0 - x)) * 3;
    const s = oy * outWidth * 3;
    for (let i = 0; i < outWidth * 3; i++) out[o + i] = Math.round(sums[s + i]);
  }
  return out;
}

/** The native level with the largest downsample not above the target's. */
function finerNativeLevel(slide: Slide, target: SlideLevel): SlideLevel {
  let best: SlideLevel | undefined;
  for (const level of slide.levels) {
    if (
      level.grid &&
      level.downsample <= target.downsample &&
      (!best || level.downsample > best.downsample)
    ) {
      best = level;
    }
  }
  if (!best) throw new CorruptFile(`level ${target.index} has no finer level with stored tiles`);
  return best;
}
