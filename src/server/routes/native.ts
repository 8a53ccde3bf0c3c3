// The native API, compatible with WSIStreamer's documented routes and JSON shapes, plus our
// additions (vendor, MPP, objective power, associated images, properties; PNG/WebP tiles):
//   GET /slides/{id}                              metadata
//   GET /tiles/{id}/{level}/{x}/{y}[.jpg|.png|.webp]?quality=
//   GET /slides/{id}/thumbnail?max_size=&quality=
//   GET /slides/{id}/associated/{name}[.jpg|.png|.webp]
// Slide ids are storage keys, URL-encoded in the path (`folder%2Fslide.svs`).

import type { FastifyInstance } from 'fastify';
import { BadRequest } from '../../errors.js';
import { parseImageFormat, parseQuality, type ImageFormat } from '../../tiles/encode.js';
import type { OpenedSlide } from '../../tiles/slide-registry.js';
import type { TileService } from '../../tiles/tile-service.js';
import { clientAbortSignal } from '../abort.js';
import { sendImage, type CachePolicy } from '../image-reply.js';

export const THUMBNAIL_MIN = 64;
export const THUMBNAIL_MAX = 2048;
const THUMBNAIL_DEFAULT = 512;

export function registerNativeRoutes(app: FastifyInstance, tiles: TileService, policy: CachePolicy): void {
  app.get<{ Params: { id: string } }>('/slides/:id', async (request, reply) => {
    const opened = await tiles.slide(request.params.id, clientAbortSignal(reply));
    reply.header('Cache-Control', `private, max-age=${Math.min(policy.maxAgeSeconds, 60)}`);
    return slideMetadata(opened);
  });

  app.get<{
    Params: { id: string; level: string; x: string; file: string };
    Querystring: { quality?: string };
  }>('/tiles/:id/:level/:x/:file', async (request, reply) => {
    const { id, level, x, file } = request.params;
    const match = /^(\d{1,10})(?:\.([A-Za-z]+))?$/.exec(file);
    const format: ImageFormat = match?.[2] ? parseImageFormat(match[2]) : 'jpg';
    const lvl = parseIndex(level, 'level', 'invalid_level');
    const tx = parseIndex(x, 'x', 'tile_out_of_bounds');
    if (!match)
      throw new BadRequest(
        `invalid tile name ${JSON.stringify(file)} (expected {y}.jpg)`,
        'tile_out_of_bounds',
      );
    const ty = Number(match[1]);
    const quality = request.query.quality === undefined ? undefined : parseQuality(request.query.quality, 0);
    const image = await tiles.getTile(id, lvl, tx, ty, { format, quality, signal: clientAbortSignal(reply) });
    if (quality !== undefined) reply.header('X-Tile-Quality', String(quality));
    return sendImage(request, reply, image, policy);
  });

  app.get<{ Params: { id: string }; Querystring: { max_size?: string; quality?: string; format?: string } }>(
    '/slides/:id/thumbnail',
    async (request, reply) => {
      const signal = clientAbortSignal(reply);
      const requested =
        request.query.max_size === undefined
          ? THUMBNAIL_DEFAULT
          : parseIndex(request.query.max_size, 'max_size');
      const maxSize = Math.min(THUMBNAIL_MAX, Math.max(THUMBNAIL_MIN, requested));
      if (maxSize !== requested) {
        reply.header('X-Thumbnail-Requested-Size', String(requested));
        reply.header('X-Thumbnail-Clamped-Size', String(maxSize));
      }
      const quality =
        request.query.quality === undefined ? undefined : parseQuality(request.query.quality, 0);
      const format = request.query.format ? parseImageFormat(request.query.format) : 'jpg';
      const { slide } = await tiles.slide(request.params.id, signal);
      const scale = Math.max(slide.width, slide.height) / maxSize;
      const image = await tiles.render(request.params.id, {
        x: 0,
        y: 0,
        width: slide.width,
        height: slide.height,
        outWidth: Math.max(1, Math.round(slide.width / scale)),
        outHeight: Math.max(1, Math.round(slide.height / scale)),
        format,
        quality,
        signal,
      });
      return sendImage(request, reply, image, policy);
    },
  );

  app.get<{ Params: { id: string; name: string }; Querystring: { quality?: string } }>(
    '/slides/:id/associated/:name',
    async (request, reply) => {
      const match = /^([A-Za-z0-9_-]+)(?:\.([A-Za-z]+))?$/.exec(request.params.name);
      if (!match)
        throw new BadRequest(`invalid associated image name ${JSON.stringify(request.params.name)}`);
      const format = match[2] ? parseImageFormat(match[2]) : 'jpg';
      const quality =
        request.query.quality === undefined ? undefined : parseQuality(request.query.quality, 0);
      const image = await tiles.getAssociated(request.params.id, match[1], {
        format,
        quality,
        signal: clientAbortSignal(reply),
      });
      return sendImage(request, reply, image, policy);
    },
  );
}

/** WSIStreamer's metadata fields, then ours. */
export function slideMetadata({ id, slide }: OpenedSlide) {
  const { icc_profile, raw, vendor, mpp_x, mpp_y, objective_power, background_color } = slide.properties;
  return {
    slide_id: id,
    format: slide.format,
    width: slide.width,
    height: slide.height,
    level_count: slide.levels.length,
    levels: slide.levels.map((l) => ({
      level: l.index,
      width: l.width,
      height: l.height,
      tile_width: l.tileWidth,
      tile_height: l.tileHeight,
      tiles_x: l.tilesX,
      tiles_y: l.tilesY,
      downsample: l.downsample,
      native: l.grid !== null,
    })),
    vendor,
    mpp_x: mpp_x ?? null,
    mpp_y: mpp_y ?? null,
    objective_power: objective_power ?? null,
    background_color,
    has_icc_profile: icc_profile !== undefined,
    associated_images: [...slide.associated.entries()].map(([name, grid]) => ({
      name,
      width: grid.width,
      height: grid.height,
    })),
    properties: raw,
  };
}

/** A non-negative integer path/query parameter, or a typed 400. */
function parseIndex(
  raw: string,
  name: string,
  code: 'bad_request' | 'invalid_level' | 'tile_out_of_bounds' = 'bad_request',
): number {
  if (!/^\d{1,10}$/.test(raw) || Number(raw) > Number.MAX_SAFE_INTEGER) {
    throw new BadRequest(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`, code);
  }
  return Number(raw);
}
