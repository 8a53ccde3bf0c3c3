// Deep Zoom, in the layout OpenSeadragon derives from the descriptor URL:
//   GET /slides/{id}/dzi?tile_size=&overlap=&format=         descriptor (XML)
//   GET /slides/{id}/dzi_files/{L}/{c}_{r}.{jpg|png|webp}     tiles (the descriptor's query is repeated)
// Levels are powers of two down to 1x1, as in OpenSlide's DeepZoomGenerator; each tile is
// rendered from the nearest finer native level. The default 254/1 matches DeepZoomGenerator;
// 256/0 tiles line up with 256-px native tiles and pass stored JPEG through (tile-service.ts).

import type { FastifyInstance } from 'fastify';
import { BadRequest } from '../../errors.js';
import { parseImageFormat, parseQuality, type ImageFormat } from '../../tiles/encode.js';
import type { TileService } from '../../tiles/tile-service.js';
import { clientAbortSignal } from '../abort.js';
import { sendImage, type CachePolicy } from '../image-reply.js';

export const DZI_DEFAULT_TILE_SIZE = 254;
export const DZI_DEFAULT_OVERLAP = 1;

interface DziQuery {
  tile_size?: string;
  overlap?: string;
  format?: string;
  quality?: string;
}

interface DziLayout {
  tileSize: number;
  overlap: number;
}

/** The Deep Zoom pyramid of a `width` x `height` image: level L is 2^(levels-1-L) times smaller. */
export class DeepZoomPyramid {
  readonly levelCount: number;

  constructor(
    readonly width: number,
    readonly height: number,
    readonly layout: DziLayout,
  ) {
    this.levelCount = Math.ceil(Math.log2(Math.max(width, height))) + 1;
  }

  /** Level-0 pixels per pixel of Deep Zoom level `level`. */
  scale(level: number): number {
    return 2 ** (this.levelCount - 1 - level);
  }

  size(level: number): { width: number; height: number } {
    const s = this.scale(level);
    return { width: Math.ceil(this.width / s), height: Math.ceil(this.height / s) };
  }

  tiles(level: number): { cols: number; rows: number } {
    const { width, height } = this.size(level);
    const t = this.layout.tileSize;
    return { cols: Math.ceil(width / t), rows: Math.ceil(height / t) };
  }

  /**
   * The tile's rectangle in level pixels: its `tileSize` square plus `overlap` pixels on every
   * side that has a neighbour, clipped to the level (DeepZoomGenerator's `_get_tile_info`).
   */
  tileRect(level: number, col: number, row: number): { x: number; y: number; width: number; height: number } {
    const { width, height } = this.size(level);
    const { cols, rows } = this.tiles(level);
    const { tileSize: t, overlap: o } = this.layout;
    const x = col * t - (col > 0 ? o : 0);
    const y = row * t - (row > 0 ? o : 0);
    const right = Math.min(width, (col + 1) * t + (col < cols - 1 ? o : 0));
    const bottom = Math.min(height, (row + 1) * t + (row < rows - 1 ? o : 0));
    return { x, y, width: right - x, height: bottom - y };
  }
}

export function registerDeepZoomRoutes(app: FastifyInstance, tiles: TileService, policy: CachePolicy): void {
  app.get<{ Params: { id: string }; Querystring: DziQuery }>('/slides/:id/dzi', async (request, reply) => {
    const layout = parseLayout(request.query);
    const format = parseDziFormat(request.query.format);
    if (request.query.quality !== undefined) parseQuality(request.query.quality, 0);
    const { slide } = await tiles.slide(request.params.id, clientAbortSignal(reply));
    reply.header('Cache-Control', `private, max-age=${Math.min(policy.maxAgeSeconds, 60)}`);
    reply.type('application/xml; charset=utf-8');
    return (
      '<?xml version="1.0" encoding="UTF-8"?>\n' +
      `<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="${format}" ` +
      `Overlap="${layout.overlap}" TileSize="${layout.tileSize}">` +
      `<Size Width="${slide.width}" Height="${slide.height}"/></Image>\n`
    );
  });

  app.get<{ Params: { id: string; level: string; file: string }; Querystring: DziQuery }>(
    '/slides/:id/dzi_files/:level/:file',
    async (request, reply) => {
      const { id, level, file } = request.params;
      const layout = parseLayout(request.query);
      const match = /^(\d{1,9})_(\d{1,9})\.([A-Za-z]+)$/.exec(file);
      if (!match) {
        throw new BadRequest(
          `invalid Deep Zoom tile name ${JSON.stringify(file)} (expected {col}_{row}.jpg)`,
        );
      }
      const format = parseImageFormat(match[3]);
      const quality =
        request.query.quality === undefined ? undefined : parseQuality(request.query.quality, 0);
      const signal = clientAbortSignal(reply);
      const { slide } = await tiles.slide(id, signal);
      const pyramid = new DeepZoomPyramid(slide.width, slide.height, layout);
      const dzLevel = /^\d{1,3}$/.test(level) ? Number(level) : -1;
      if (dzLevel < 0 || dzLevel >= pyramid.levelCount) {
        throw new BadRequest(
          `Invalid level: ${level} (the Deep Zoom pyramid has levels 0-${pyramid.levelCount - 1})`,
          'invalid_level',
        );
      }
      const col = Number(match[1]);
      const row = Number(match[2]);
      const { cols, rows } = pyramid.tiles(dzLevel);
      if (col >= cols || row >= rows) {
        throw new BadRequest(
          `Tile coordinates (${col}, ${row}) at level ${dzLevel} are out of bounds (max: ${cols - 1}, ${rows - 1})`,
          'tile_out_of_bounds',
        );
      }
      const rect = pyramid.tileRect(dzLevel, col, row);
      const scale = pyramid.scale(dzLevel);
      // Level-0 rectangle; the last row/column of a level may cover less than `scale` pixels.
      const x = rect.x * scale;
      const y = rect.y * scale;
      const image = await tiles.render(id, {
        x,
        y,
        width: Math.min(slide.width, (rect.x + rect.width) * scale) - x,
        height: Math.min(slide.height, (rect.y + rect.height) * scale) - y,
        outWidth: rect.width,
        outHeight: rect.height,
        format,
        quality,
        signal,
      });
      return sendImage(request, reply, image, policy);
    },
  );
}

function parseLayout(query: DziQuery): DziLayout {
  const tileSize = parseBounded(query.tile_size, 'tile_size', DZI_DEFAULT_TILE_SIZE, 16, 4096);
  const overlap = parseBounded(query.overlap, 'overlap', DZI_DEFAULT_OVERLAP, 0, 64);
  if (overlap * 2 >= tileSize)
    throw new BadRequest(`overlap ${overlap} is too large for tile_size ${tileSize}`);
  return { tileSize, overlap };
}

function parseDziFormat(raw: string | undefined): ImageFormat {
  return raw === undefined ? 'jpg' : parseImageFormat(raw);
}

function parseBounded(
  raw: string | undefined,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  if (raw === undefined || raw === '') return fallback;
  const n = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= min && n <= max)) {
    throw new BadRequest(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return n;
}
