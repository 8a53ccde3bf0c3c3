// The tile service: every image MedStream serves is made here — native tiles, rendered regions
// (Deep Zoom, IIIF, thumbnails, ML regions) and associated images — behind one encoded-image
// cache bounded in bytes, with concurrent identical requests sharing one computation.
//
//   getTile  -> cache | passthrough (stored JPEG, tables spliced, APP14 for RGB) | readRegion -> encode
//   render   -> cache | pick level -> readRegion -> resize -> mirror/rotate/colour -> encode
//
// Cache keys and ETags include the object's identity, so a replaced slide never serves stale
// images.

import { createHash } from 'node:crypto';
import type { Sharp } from 'sharp';
import { prepareJpeg, type Codecs } from '../codecs/index.js';
import { Compression, type DecodedImage } from '../codecs/types.js';
import { BadRequest, NotFound } from '../errors.js';
import type { SlideLevel } from '../formats/slide.js';
import { ByteLru } from '../io/lru.js';
import { SharedFlight } from '../io/shared-flight.js';
import { CONTENT_TYPES, encodePipeline, sharpOf, type ImageFormat } from './encode.js';
import { readGrid, readRegion } from './region.js';
import type { OpenedSlide, SlideRegistry } from './slide-registry.js';

export interface ImageResult {
  body: Buffer;
  contentType: string;
  /** Strong ETag, quoted. */
  etag: string;
  /** Whether the body came from the encoded-image cache. */
  cacheHit: boolean;
  /** Whether a stored tile was served without decoding. */
  passthrough: boolean;
}

export interface TileServiceOptions {
  registry: SlideRegistry;
  codecs: Codecs;
  /** Bound of the encoded-image cache in bytes; 0 disables it. */
  cacheBytes: number;
  /** JPEG/WebP quality when a request names none. */
  defaultQuality: number;
  /** Largest region read from a level to serve one request, in pixels. */
  maxRegionPixels: number;
}

export interface TileRequest {
  format: ImageFormat;
  /** Undefined = the default quality (and stored JPEG tiles pass through untouched). */
  quality?: number;
  signal?: AbortSignal;
}

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
  /** IIIF: mirror horizontally, then rotate clockwise. */
  mirror?: boolean;
  rotation?: 0 | 90 | 180 | 270;
  colour?: 'color' | 'gray' | 'bitonal';
  signal?: AbortSignal;
}

export class TileService {
  private readonly cache: ByteLru<string, { body: Buffer; contentType: string; passthrough: boolean }>;
  private readonly flight = new SharedFlight<string, ImageResult>();
  readonly registry: SlideRegistry;

  constructor(private readonly options: TileServiceOptions) {
    this.registry = options.registry;
    this.cache = new ByteLru({ maxBytes: options.cacheBytes, sizeOf: (v) => v.body.length + 64 });
  }

  /** The opened slide (metadata routes use it directly). */
  slide(id: string, signal?: AbortSignal): Promise<OpenedSlide> {
    return this.registry.get(id, signal);
  }

  /** One tile of the slide's native tile grid at `level` (synthesised levels included). */
  getTile(id: string, level: number, x: number, y: number, request: TileRequest): Promise<ImageResult> {
    return this.registry.withSlide(id, request.signal, (opened) => {
      const lvl = levelOf(opened, level);
      if (
        !Number.isSafeInteger(x) ||
        !Number.isSafeInteger(y) ||
        x < 0 ||
        y < 0 ||
        x >= lvl.tilesX ||
        y >= lvl.tilesY
      ) {
        throw new BadRequest(
          `Tile coordinates (${x}, ${y}) at level ${level} are out of bounds (max: ${lvl.tilesX - 1}, ${lvl.tilesY - 1})`,
          'tile_out_of_bounds',
        );
      }
      const quality = request.quality ?? this.options.defaultQuality;
      const passthroughWanted = request.format === 'jpg' && quality === this.options.defaultQuality;
      const key = `${opened.identity}\0${id}\0tile\0${level}\0${x}\0${y}\0${request.format}\0${quality}`;
      return this.cached(key, request.format, request.signal, async (signal) => {
        const grid = lvl.grid;
        if (passthroughWanted && grid && grid.encoding.compression === Compression.JPEG) {
          const stored = await grid.readTile(x, y, { signal });
          if (stored) return { body: Buffer.from(prepareJpeg(stored, grid.encoding)), passthrough: true };
        }
        const pixels = await readRegion(
          opened.slide,
          this.options.codecs,
          level,
          x * lvl.tileWidth,
          y * lvl.tileHeight,
          lvl.tileWidth,
          lvl.tileHeight,
          { signal, maxPixels: this.options.maxRegionPixels },
        );
        return {
          body: await encodePipeline(sharpOf(pixels), { format: request.format, quality }),
          passthrough: false,
        };
      });
    });
  }

  /** Renders a rectangle of the slide at the requested output size (DZI, IIIF, thumbnails, regions). */
  render(id: string, request: RenderRequest): Promise<ImageResult> {
    return this.registry.withSlide(id, request.signal, (opened) => {
      const quality = request.quality ?? this.options.defaultQuality;
      const key = [
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
      return this.cached(key, request.format, request.signal, async (signal) => {
        const pixels = await this.renderPixels(opened, { ...request, signal });
        let pipeline = sharpOf(pixels);
        if (request.mirror) pipeline = pipeline.flop();
        if (request.rotation) pipeline = pipeline.rotate(request.rotation);
        pipeline = applyColour(pipeline, request.colour);
        return {
          body: await encodePipeline(pipeline, { format: request.format, quality }),
          passthrough: false,
        };
      });
    });
  }

  /**
   * RGB pixels of a rectangle (level-0 coordinates) at the output size, read from the coarsest
   * level that still has at least the output resolution, then resized (Lanczos-3) when the
   * level's pixels do not map 1:1 to the output.
   */
  async renderPixels(opened: OpenedSlide, request: RenderRequest): Promise<DecodedImage> {
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
    const level =
      request.level !== undefined
        ? levelOf(opened, request.level)
        : bestLevel(slide.levels, Math.min(width / outWidth, height / outHeight));
    const ds = level.downsample;
    const lx = Math.floor(x / ds);
    const ly = Math.floor(y / ds);
    const lw = Math.max(1, Math.min(Math.ceil((x + width) / ds), level.width) - lx);
    const lh = Math.max(1, Math.min(Math.ceil((y + height) / ds), level.height) - ly);
    const pixels = await readRegion(slide, this.options.codecs, level.index, lx, ly, lw, lh, {
      signal: request.signal,
      maxPixels: this.options.maxRegionPixels,
    });
    if (lw === outWidth && lh === outHeight) return pixels;
    const { data, info } = await sharpOf(pixels)
      .resize(outWidth, outHeight, { fit: 'fill', kernel: 'lanczos3' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    return { data, width: info.width, height: info.height, channels: info.channels as 3 };
  }

  /** An associated image (`label`, `macro`, `thumbnail`, ...), whole, in the requested format. */
  getAssociated(id: string, name: string, request: TileRequest): Promise<ImageResult> {
    return this.registry.withSlide(id, request.signal, (opened) => {
      const grid = opened.slide.associated.get(name);
      if (!grid) {
        const names = [...opened.slide.associated.keys()].join(', ') || 'none';
        throw new NotFound(`slide ${id} has no associated image ${JSON.stringify(name)} (it has: ${names})`);
      }
      const quality = request.quality ?? this.options.defaultQuality;
      const key = `${opened.identity}\0${id}\0associated\0${name}\0${request.format}\0${quality}`;
      return this.cached(key, request.format, request.signal, async (signal) => {
        const pixels = await readGrid(grid, this.options.codecs, 0, 0, grid.width, grid.height, {
          signal,
          background: opened.slide.properties.background_color,
          maxPixels: this.options.maxRegionPixels,
        });
        return {
          body: await encodePipeline(sharpOf(pixels), { format: request.format, quality }),
          passthrough: false,
        };
      });
    });
  }

  stats() {
    return { tiles: this.cache.stats(), flight: this.flight.stats(), slides: this.registry.stats() };
  }

  private cached(
    key: string,
    format: ImageFormat,
    signal: AbortSignal | undefined,
    make: (signal: AbortSignal) => Promise<{ body: Buffer; passthrough: boolean }>,
  ): Promise<ImageResult> {
    const etag = `"${createHash('sha256').update(key).digest('base64url').slice(0, 32)}"`;
    const hit = this.cache.get(key);
    if (hit) return Promise.resolve({ ...hit, etag, cacheHit: true });
    return this.flight.run(
      key,
      async (sharedSignal) => {
        const made = await make(sharedSignal);
        // A copy: passthrough bodies may be views into a larger coalesced read.
        const entry = {
          body: Buffer.from(made.body),
          contentType: CONTENT_TYPES[format],
          passthrough: made.passthrough,
        };
        this.cache.set(key, entry);
        return { ...entry, etag, cacheHit: false };
      },
      signal,
    );
  }
}

function levelOf(opened: OpenedSlide, level: number): SlideLevel {
  const levels = opened.slide.levels;
  if (!Number.isSafeInteger(level) || level < 0 || level >= levels.length) {
    throw new BadRequest(
      `Invalid level: ${level} (slide has ${levels.length} levels, valid range: 0-${levels.length - 1})`,
      'invalid_level',
    );
  }
  return levels[level];
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

function applyColour(pipeline: Sharp, colour: RenderRequest['colour']): Sharp {
  if (colour === 'gray') return pipeline.grayscale();
  if (colour === 'bitonal') return pipeline.grayscale().threshold(128);
  return pipeline;
}
