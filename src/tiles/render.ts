// Rendering a rectangle of a slide (Deep Zoom, IIIF, thumbnails, ML regions): the stored tile a
// request is exactly equal to, the level to read from, the read and Lanczos resize, and the IIIF
// mirror/rotate/colour transforms before encoding. Uncached: TileService puts its cache in front.

import type { Sharp } from 'sharp';
import type { Codecs } from '../codecs/index.js';
import { Compression, type DecodedImage } from '../codecs/types.js';
import { BadRequest } from '../errors.js';
import type { SlideLevel } from '../formats/slide.js';
import { encodePipeline, sharpOf, type ImageFormat } from './encode.js';
import { readRegion } from './region.js';
import type { OpenedSlide } from './slide-registry.js';
import type { RequestTimings } from './timings.js';

/** A rectangle of the slide, in level-0 pixels, rendered at a given output size. */
export interface RenderRequest {
  x: number;
  y: number;
  width: number;
  height: number;
  outWidth: number;
  outHeight: number;
  format: ImageFormat;
  quality?: number;
  /** Read from exactly this level instead of the best one for the scale. */
  level?: number;
  /** IIIF: mirror horizontally, then rotate clockwise by `rotation` degrees (0 ≤ r < 360). */
  mirror?: boolean;
  rotation?: number;
  colour?: 'color' | 'gray' | 'bitonal';
  signal?: AbortSignal;
}

/** What rendering reads with (TileServiceOptions has both). */
export interface RenderContext {
  codecs: Codecs;
  /** Largest region read from a level to serve one request, in pixels. */
  maxRegionPixels: number;
}

/** The level `level` of the slide, or a typed 400 when the slide has no such level. */
export function levelOf(opened: OpenedSlide, level: number): SlideLevel {
  const levels = opened.slide.levels;
  if (!Number.isSafeInteger(level) || level < 0 || level >= levels.length) {
    throw new BadRequest(
      `Invalid level: ${level} (slide has ${levels.length} levels, valid range: 0-${levels.length - 1})`,
      'invalid_level',
    );
  }
  return levels[level];
}

/**
 * The native tile a render request is exactly equal to, if any: a full-size stored JPEG tile
 * of a level whose downsample is the request's scale, wanted as JPEG at the default quality and
 * untransformed. IIIF and Deep Zoom (256/0) tile requests land here, so they share the native
 * tiles' passthrough and cache. Edge tiles (smaller than the stored, padded tile) never match.
 */
export function storedTileFor(
  opened: OpenedSlide,
  request: RenderRequest,
  defaultQuality: number,
): { level: number; x: number; y: number } | undefined {
  const { x, y, width, height, outWidth, outHeight } = request;
  if (request.format !== 'jpg' || (request.quality ?? defaultQuality) !== defaultQuality) return undefined;
  if (request.mirror || request.rotation || (request.colour ?? 'color') !== 'color') return undefined;
  for (const level of opened.slide.levels) {
    const grid = level.grid;
    if (!grid || grid.encoding.compression !== Compression.JPEG || (grid.layout ?? 'tiles') !== 'tiles')
      continue;
    if (request.level !== undefined && request.level !== level.index) continue;
    const { tileWidth: tw, tileHeight: th, downsample: ds } = level;
    if (outWidth !== tw || outHeight !== th) continue;
    const tx = Math.round(x / ds / tw);
    const ty = Math.round(y / ds / th);
    // Less than one level pixel off: exact at downsample 1, and downsamples like 4.0002 still
    // map IIIF scale factor 4 onto the level (until the drift reaches a level pixel).
    const near = (a: number, b: number) => Math.abs(a - b) < ds;
    if (!near(x, tx * tw * ds) || !near(y, ty * th * ds) || !near(width, tw * ds) || !near(height, th * ds))
      continue;
    if ((tx + 1) * tw > level.width || (ty + 1) * th > level.height) continue;
    return { level: level.index, x: tx, y: ty };
  }
  return undefined;
}

/** The cache key of a rendered image: the slide's identity first, so a replaced slide never matches. */
export function renderKey(opened: OpenedSlide, id: string, request: RenderRequest, quality: number): string {
  return [
    opened.identity,
    id,
    'render',
    request.x,
    request.y,
    request.width,
    request.height,
    request.outWidth,
    request.outHeight,
    request.level ?? '',
    request.mirror ? 'm' : '',
    request.rotation ?? 0,
    request.colour ?? 'color',
    request.format,
    quality,
  ].join('\0');
}

/** A rendered rectangle, mirrored/rotated/coloured as asked, encoded in the request's format. */
export async function renderImage(
  opened: OpenedSlide,
  request: RenderRequest,
  quality: number,
  context: RenderContext,
  timings: RequestTimings,
): Promise<Buffer> {
  const pixels = await renderPixels(opened, request, context, timings);
  let pipeline = sharpOf(pixels);
  // sharp mirrors before it rotates, the order IIIF prescribes; arbitrary angles enlarge
  // the canvas, and its corners get the slide's background.
  if (request.mirror) pipeline = pipeline.flop();
  if (request.rotation) {
    const background = `#${opened.slide.properties.background_color}`;
    pipeline = pipeline.rotate(request.rotation, { background });
  }
  pipeline = applyColour(pipeline, request.colour);
  return timings.time('encode', () =>
    encodePipeline(pipeline, {
      format: request.format,
      quality,
      bitonal: request.colour === 'bitonal',
    }),
  );
}

/**
 * RGB pixels of a rectangle (level-0 coordinates) at the output size, read from the coarsest
 * level that still has at least the output resolution, then resized (Lanczos-3) when the
 * level's pixels do not map 1:1 to the output.
 */
export async function renderPixels(
  opened: OpenedSlide,
  request: RenderRequest,
  context: RenderContext,
  timings?: RequestTimings,
): Promise<DecodedImage> {
  const { slide } = opened;
  const { x, y, width, height, outWidth, outHeight } = request;
  if (
    ![x, y, width, height, outWidth, outHeight].every(Number.isSafeInteger) ||
    width < 1 ||
    height < 1 ||
    outWidth < 1 ||
    outHeight < 1
  ) {
    throw new BadRequest(`invalid region ${x},${y},${width},${height} → ${outWidth}x${outHeight}`);
  }
  const source = (level: SlideLevel) => {
    const ds = level.downsample;
    // Nearest level pixels, not floor/ceil: with downsamples like 1.9997 the rectangle then
    // maps 1:1 where it should, instead of being stretched by a pixel.
    const lx = Math.round(x / ds);
    const ly = Math.round(y / ds);
    const lw = Math.max(1, levelEdge(x + width, slide.width, level.width, ds) - lx);
    const lh = Math.max(1, levelEdge(y + height, slide.height, level.height, ds) - ly);
    return { level, lx, ly, lw, lh };
  };
  let chosen = source(
    request.level !== undefined
      ? levelOf(opened, request.level)
      : bestLevel(slide.levels, Math.min(width / outWidth, height / outHeight)),
  );
  // Slides with sparse pyramids (1, 4, 16, ...) can need more source pixels than the read
  // limit for a large output; a coarser level, slightly upscaled, is better than a refusal.
  if (request.level === undefined) {
    for (const level of slide.levels) {
      if (chosen.lw * chosen.lh <= context.maxRegionPixels) break;
      if (level.downsample > chosen.level.downsample) chosen = source(level);
    }
  }
  const { level, lx, ly, lw, lh } = chosen;
  const pixels = await readRegion(slide, context.codecs, level.index, lx, ly, lw, lh, {
    signal: request.signal,
    maxPixels: context.maxRegionPixels,
    timings,
  });
  if (lw === outWidth && lh === outHeight) return pixels;
  const { data, info } = await sharpOf(pixels)
    .resize(outWidth, outHeight, { fit: 'fill', kernel: 'lanczos3' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels as 3 };
}

/** The coarsest level whose downsample does not exceed `scale` (level-0 pixels per output pixel). */
export function bestLevel(levels: readonly SlideLevel[], scale: number): SlideLevel {
  let best = levels[0];
  for (const level of levels) {
    // A hair of tolerance: downsamples like 4.0002 must still serve a 4x request.
    if (level.downsample <= scale * 1.001 && level.downsample > best.downsample) best = level;
  }
  return best;
}

/**
 * The level pixel a level-0 edge coordinate maps to. The image's own edge maps to the level's
 * edge exactly (downsamples are not exact ratios, and rounding must not add a background line);
 * a request reaching past the image extends past the level by the same amount, as background.
 */
function levelEdge(edge: number, imageSize: number, levelSize: number, ds: number): number {
  if (edge <= imageSize) return Math.min(Math.round(edge / ds), levelSize);
  return levelSize + Math.round((edge - imageSize) / ds);
}

/**
 * IIIF gray and bitonal as one band: sharp's grayscale() alone still writes three equal sRGB
 * channels; the `b-w` output colourspace makes JPEG and PNG single-channel.
 */
function applyColour(pipeline: Sharp, colour: RenderRequest['colour']): Sharp {
  if (colour === 'gray') return pipeline.grayscale().toColourspace('b-w');
  if (colour === 'bitonal') return pipeline.grayscale().threshold(128).toColourspace('b-w');
  return pipeline;
}
