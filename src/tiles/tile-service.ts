// The tile service: every image MedStream serves is made here — native tiles, rendered regions
// (Deep Zoom, IIIF, thumbnails, ML regions; the rendering itself is render.ts) and associated
// images — behind one encoded-image cache bounded in bytes, with concurrent identical requests
// sharing one computation.
//
//   getTile  -> cache | shared cache (Redis, optional) | passthrough (stored JPEG, tables spliced, APP14 for RGB) | readRegion -> encode
//   render   -> exactly one stored tile? getTile (passthrough) | cache | pick level -> readRegion
//               -> resize -> mirror/rotate/colour -> encode   (render.ts)
//
// Cache keys and ETags include the object's identity, so a replaced slide never serves stale
// images.

import { createHash } from 'node:crypto';
import { decodesCleanly, JpegScanner, prepareJpeg, type Codecs } from '../codecs/index.js';
import { Compression, type DecodedImage } from '../codecs/types.js';
import { BadRequest, NotFound } from '../errors.js';
import { ByteLru } from '../io/lru.js';
import { SharedFlight } from '../io/shared-flight.js';
import {
  CONTENT_TYPES,
  encodeImage,
  encodePipeline,
  sharpOf,
  type EncodeOptions,
  type ImageFormat,
} from './encode.js';
import { readGrid, readRegion } from './region.js';
import { joinedRegion, type RegionOutput } from './region-join.js';
import {
  levelOf,
  renderImage,
  renderKey,
  renderPixels,
  storedTileFor,
  type RenderRequest,
} from './render.js';
import type { SharedImageCache } from './shared-cache.js';
import { sampleBilinear } from './subpixel.js';
import { RequestTimings } from './timings.js';
import type { OpenedSlide, SlideRegistry } from './slide-registry.js';

export type { RenderRequest } from './render.js';

/** Encoded regions up to this many pixels are cached (`TileService.regionImage`): 512×512. */
export const REGION_CACHE_PIXELS = 512 * 512;

export interface ImageResult {
  body: Buffer;
  contentType: string;
  /** Strong ETag, quoted. */
  etag: string;
  /** Whether the body came from a cache (in-process or shared). */
  cacheHit: boolean;
  /** Which cache answered: `memory` (this process), `redis` (shared), or undefined (computed). */
  cacheLevel?: 'memory' | 'redis';
  /** Whether a stored tile was served without decoding. */
  passthrough: boolean;
  /** Where the computation's time went (absent for cache hits). */
  timings?: RequestTimings;
  /** The in-process cache's key of this image (see `cachedImage`). */
  cacheKey?: string;
}

/** An image in the in-process cache. */
export interface CachedImage {
  body: Buffer;
  contentType: string;
  etag: string;
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
  /** Second cache level shared by replicas (Redis), behind the in-process one. */
  sharedCache?: SharedImageCache;
}

export interface TileRequest {
  format: ImageFormat;
  /** Undefined = the default quality (and stored JPEG tiles pass through untouched). */
  quality?: number;
  signal?: AbortSignal;
}

export class TileService {
  /** Encoded images with their ETag (hashed once, on the miss, not on every hit). */
  private readonly cache: ByteLru<
    string,
    { body: Buffer; contentType: string; passthrough: boolean; etag: string }
  >;
  private readonly flight = new SharedFlight<string, ImageResult>();
  /** The check before a stored JPEG tile passes through (keeps the slides' Huffman tables). */
  private readonly scanner = new JpegScanner();
  /** Images computed (not answered by either cache). */
  private rendered = 0;
  readonly registry: SlideRegistry;

  constructor(private readonly options: TileServiceOptions) {
    this.registry = options.registry;
    this.cache = new ByteLru({ maxBytes: options.cacheBytes, sizeOf: (v) => v.body.length + 64 });
  }

  /** The opened slide (metadata routes use it directly). */
  slide(id: string, signal?: AbortSignal): Promise<OpenedSlide> {
    return this.registry.get(id, signal);
  }

  /**
   * One tile of the slide's native tile grid at `level` (synthesised levels included). A level-0
   * tile needs only level 0: a slide not open yet is opened lazily (`SlideRegistry.withLevel`).
   */
  getTile(id: string, level: number, x: number, y: number, request: TileRequest): Promise<ImageResult> {
    return this.registry.withLevel(id, level, request.signal, (opened) => {
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
      return this.cached(key, request.format, request.signal, async (signal, timings) => {
        const grid = lvl.grid;
        if (passthroughWanted && grid && grid.encoding.compression === Compression.JPEG) {
          const stored = await timings.time('storage', () => grid.readTile(x, y, { signal }));
          if (stored) {
            const body = prepareJpeg(stored, grid.encoding);
            // Passed through only when it decodes cleanly (test/server/corruption.test.ts): noise or
            // an early end is decoded and re-encoded below, or refused there with a typed error.
            // The entropy-level scan shows that for ordinary tiles without decoding them; a stream
            // it cannot vouch for (progressive, unusual markers, damage) gets the full decode check.
            const max = this.options.maxRegionPixels;
            const clean = await timings.time(
              'decode',
              async () => this.scanner.scansCleanly(body, max) || (await decodesCleanly(body, max)),
            );
            if (clean) return { body: Buffer.from(body), passthrough: true };
          }
        }
        const pixels = await readRegion(
          opened.slide,
          this.options.codecs,
          level,
          x * lvl.tileWidth,
          y * lvl.tileHeight,
          lvl.tileWidth,
          lvl.tileHeight,
          { signal, maxPixels: this.options.maxRegionPixels, timings },
        );
        return {
          body: await timings.time('encode', () =>
            encodePipeline(sharpOf(pixels), { format: request.format, quality }),
          ),
          passthrough: false,
        };
      });
    });
  }

  /** Renders a rectangle of the slide at the requested output size (DZI, IIIF, thumbnails, regions). */
  render(id: string, request: RenderRequest): Promise<ImageResult> {
    return this.registry.withSlide(id, request.signal, (opened) => {
      const quality = request.quality ?? this.options.defaultQuality;
      const stored = storedTileFor(opened, request, this.options.defaultQuality);
      if (stored) {
        return this.getTile(id, stored.level, stored.x, stored.y, { format: 'jpg', signal: request.signal });
      }
      const key = renderKey(opened, id, request, quality);
      return this.cached(key, request.format, request.signal, async (signal, timings) => ({
        body: await renderImage(opened, { ...request, signal }, quality, this.options, timings),
        passthrough: false,
      }));
    });
  }

  /** JPEG/WebP quality used when a request names none. */
  get defaultQuality(): number {
    return this.options.defaultQuality;
  }

  /**
   * `w` x `h` pixels of `level` from level-0 (`x`, `y`), as OpenSlide's read_region: the level
   * is placed at the fractional origin x / downsample and sampled bilinearly when that is not a
   * whole pixel.
   */
  readLevelRegion(
    id: string,
    level: number,
    x: number,
    y: number,
    w: number,
    h: number,
    signal?: AbortSignal,
  ): Promise<DecodedImage> {
    return this.registry.withSlide(id, signal, async (opened) => {
      const { index, downsample } = levelOf(opened, level);
      const ox = x / downsample;
      const oy = y / downsample;
      const options = { signal, maxPixels: this.options.maxRegionPixels };
      const read = (lx: number, ly: number, lw: number, lh: number) =>
        readRegion(opened.slide, this.options.codecs, index, lx, ly, lw, lh, options);
      if (Number.isInteger(ox) && Number.isInteger(oy)) return read(ox, oy, w, h);
      return sampleBilinear(await read(Math.floor(ox), Math.floor(oy), w + 1, h + 1), ox, oy, w, h);
    });
  }

  /**
   * `readLevelRegion` encoded (or as raw RGB bytes), for the region route: stored JPEG tiles go
   * through one joined libvips pipeline (region-join.ts), anything else is read tile by tile.
   */
  levelRegion(
    id: string,
    level: number,
    x: number,
    y: number,
    w: number,
    h: number,
    output: RegionOutput,
    signal?: AbortSignal,
  ): Promise<Buffer> {
    return this.registry.withSlide(id, signal, async (opened) => {
      const { grid, downsample } = levelOf(opened, level);
      const [ox, oy] = [x / downsample, y / downsample];
      if (grid && Number.isInteger(ox) && Number.isInteger(oy)) {
        const maxPixels = this.options.maxRegionPixels;
        const joined = await joinedRegion(grid, ox, oy, w, h, output, { signal, maxPixels });
        if (joined) return joined;
      }
      const pixels = await this.readLevelRegion(id, level, x, y, w, h, signal);
      if (output !== 'raw') return encodeImage(pixels, output);
      return Buffer.from(pixels.data.buffer, pixels.data.byteOffset, pixels.data.byteLength);
    });
  }

  /**
   * `levelRegion` encoded, as a cached image (ETag, the in-process and shared caches, and so the
   * server's cached-image fast path): for small regions (≤ REGION_CACHE_PIXELS), which ML
   * pipelines read again epoch after epoch. Larger ones would push tiles out of the cache.
   */
  regionImage(
    id: string,
    level: number,
    x: number,
    y: number,
    w: number,
    h: number,
    output: EncodeOptions,
    signal?: AbortSignal,
  ): Promise<ImageResult> {
    return this.registry.withSlide(id, signal, (opened) => {
      const { format, quality, optimiseCoding = true } = output;
      const key = `${opened.identity}\0${id}\0region\0${level}\0${x}\0${y}\0${w}\0${h}\0${format}\0${quality}\0${optimiseCoding}`;
      return this.cached(key, format, signal, async (sharedSignal) => ({
        body: await this.levelRegion(id, level, x, y, w, h, output, sharedSignal),
        passthrough: false,
      }));
    });
  }

  /** Raw RGB pixels of a rectangle at the output size, uncached (the region API's `raw` format). */
  renderRaw(id: string, request: Omit<RenderRequest, 'format' | 'quality'>): Promise<DecodedImage> {
    return this.registry.withSlide(id, request.signal, (opened) =>
      renderPixels(opened, { ...request, format: 'png' }, this.options),
    );
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
      return this.cached(key, request.format, request.signal, async (signal, timings) => {
        const pixels = await readGrid(grid, this.options.codecs, 0, 0, grid.width, grid.height, {
          signal,
          timings,
          background: opened.slide.properties.background_color,
          maxPixels: this.options.maxRegionPixels,
        });
        return {
          body: await timings.time('encode', () =>
            encodePipeline(sharpOf(pixels), { format: request.format, quality }),
          ),
          passthrough: false,
        };
      });
    });
  }

  stats() {
    return {
      tiles: this.cache.stats(),
      flight: this.flight.stats(),
      rendered: this.rendered,
      slides: this.registry.stats(),
      codecs: this.options.codecs.stats(),
      shared: this.options.sharedCache?.stats(),
    };
  }

  /**
   * The image cached under `key` (an earlier answer's `cacheKey`) for slide `id`, only while the
   * slide is open, unreplaced and needs no revalidation: then it is exactly what `getTile` /
   * `render` would answer, without their work. Counts as a cache hit.
   */
  cachedImage(id: string, key: string): CachedImage | undefined {
    const identity = this.registry.freshIdentity(id);
    // The key starts with `${identity}\0${id}\0` (checked without building that string).
    if (
      identity === undefined ||
      !key.startsWith(identity) ||
      key.charCodeAt(identity.length) !== 0 ||
      !key.startsWith(id, identity.length + 1) ||
      key.charCodeAt(identity.length + 1 + id.length) !== 0
    )
      return undefined;
    return this.cache.get(key);
  }

  private cached(
    key: string,
    format: ImageFormat,
    signal: AbortSignal | undefined,
    make: (signal: AbortSignal, timings: RequestTimings) => Promise<{ body: Buffer; passthrough: boolean }>,
  ): Promise<ImageResult> {
    const hit = this.cache.get(key);
    if (hit) return Promise.resolve({ ...hit, cacheHit: true, cacheLevel: 'memory', cacheKey: key });
    const etag = `"${createHash('sha256').update(key).digest('base64url').slice(0, 32)}"`;
    const shared = this.options.sharedCache;
    return this.flight.run(
      key,
      async (sharedSignal) => {
        // Redis down, slow or hung reads as a miss (the cache never rejects; this guards others).
        const remote = await shared?.get(key, sharedSignal).catch(() => undefined);
        if (remote) {
          this.cache.set(key, { ...remote, etag });
          return { ...remote, etag, cacheHit: true, cacheLevel: 'redis' as const, cacheKey: key };
        }
        this.rendered++;
        const timings = new RequestTimings();
        const made = await make(sharedSignal, timings);
        // A copy: passthrough bodies may be views into a larger coalesced read.
        const entry = {
          body: Buffer.from(made.body),
          contentType: CONTENT_TYPES[format],
          passthrough: made.passthrough,
        };
        this.cache.set(key, { ...entry, etag });
        try {
          shared?.set(key, entry);
        } catch {
          // A shared cache that throws is only a cache that missed.
        }
        return { ...entry, etag, cacheHit: false, timings, cacheKey: key };
      },
      signal,
    );
  }
}
