// Region reads for ML pipelines:
//   GET /slides/{id}/region?x&y&width&height[&level=L | &mpp=M][&format=png|jpg|webp|raw][&quality=]
// `x, y` are level-0 pixels, as in OpenSlide's read_region. With `level`, `width x height` pixels
// of that level are read exactly as OpenSlide does (area outside the slide is background). With
// `mpp`, the output has that many microns per pixel, resampled (Lanczos-3) from the nearest
// finer level. `raw` is interleaved 8-bit RGB with X-Region-Width/-Height/-Channels headers.
// Neither `level` nor `mpp` means level 0. PNG is the default: ML wants lossless pixels.
// Encoded `level` regions up to 512×512 are cached like tiles (ETag, X-Cache; a repeat is
// answered by the cached-image fast path); larger ones and `raw` are computed each time.

import type { FastifyInstance, FastifyReply } from 'fastify';
import type { DecodedImage } from '../../codecs/types.js';
import { BadRequest } from '../../errors.js';
import { parseImageFormat, parseQuality, type ImageFormat } from '../../tiles/encode.js';
import { REGION_CACHE_PIXELS, type TileService } from '../../tiles/tile-service.js';
import { clientAbortSignal } from '../abort.js';
import { sendImage, type CachePolicy } from '../image-reply.js';

interface RegionQuery {
  x?: string;
  y?: string;
  width?: string;
  height?: string;
  level?: string;
  mpp?: string;
  format?: string;
  quality?: string;
}

export function registerRegionRoutes(
  app: FastifyInstance,
  tiles: TileService,
  policy: CachePolicy,
  limits: { maxRegionPixels: number },
): void {
  app.get<{ Params: { id: string }; Querystring: RegionQuery }>(
    '/slides/:id/region',
    async (request, reply) => {
      const q = request.query;
      const x = parseInteger(q.x, 'x', { min: -(2 ** 31) });
      const y = parseInteger(q.y, 'y', { min: -(2 ** 31) });
      const width = parseInteger(q.width, 'width', { min: 1 });
      const height = parseInteger(q.height, 'height', { min: 1 });
      if (width * height > limits.maxRegionPixels) {
        throw new BadRequest(
          `region of ${width}x${height} exceeds the limit of ${limits.maxRegionPixels} pixels (--max-region-pixels)`,
        );
      }
      if (q.level !== undefined && q.mpp !== undefined)
        throw new BadRequest('give either level or mpp, not both');
      const raw = q.format === 'raw';
      const format: ImageFormat = raw || q.format === undefined ? 'png' : parseImageFormat(q.format);
      const quality = q.quality === undefined ? undefined : parseQuality(q.quality, 0);
      const signal = clientAbortSignal(reply);
      const opened = await tiles.slide(request.params.id, signal);
      const { slide } = opened;

      if (q.mpp !== undefined) {
        const mpp = /^\d+(\.\d+)?$/.test(q.mpp) ? Number(q.mpp) : NaN;
        if (!(mpp > 0)) throw new BadRequest(`mpp must be a positive number, got ${JSON.stringify(q.mpp)}`);
        const { mpp_x, mpp_y } = slide.properties;
        if (!mpp_x || !mpp_y)
          throw new BadRequest(`slide ${opened.id} has no microns-per-pixel; ask by level instead`);
        const render = {
          x,
          y,
          width: Math.max(1, Math.round((width * mpp) / mpp_x)),
          height: Math.max(1, Math.round((height * mpp) / mpp_y)),
          outWidth: width,
          outHeight: height,
          signal,
        };
        reply.header('X-Region-Mpp', String(mpp));
        if (raw) return sendRaw(reply, await tiles.renderRaw(opened.id, render));
        return sendImage(
          request,
          reply,
          await tiles.render(opened.id, { ...render, format, quality }),
          policy,
        );
      }

      const level =
        q.level === undefined ? 0 : parseInteger(q.level, 'level', { min: 0, code: 'invalid_level' });
      if (level >= slide.levels.length) {
        throw new BadRequest(
          `Invalid level: ${level} (slide has ${slide.levels.length} levels, valid range: 0-${slide.levels.length - 1})`,
          'invalid_level',
        );
      }
      const { downsample } = slide.levels[level];
      reply.header('X-Region-Level', String(level));
      reply.header('X-Region-Downsample', String(downsample));
      // No second Huffman pass for JPEG: regions are for pipelines, where the encode's time counts more.
      const output = raw
        ? 'raw'
        : { format, quality: quality ?? tiles.defaultQuality, optimiseCoding: false };
      // Small encoded regions are cached images (ETag / 304, X-Cache, the fast path for repeats).
      if (output !== 'raw' && width * height <= REGION_CACHE_PIXELS) {
        const image = await tiles.regionImage(opened.id, level, x, y, width, height, output, signal);
        return sendImage(request, reply, image, policy);
      }
      const body = await tiles.levelRegion(opened.id, level, x, y, width, height, output, signal);
      if (raw) return sendRawBytes(reply, body, width, height);
      reply.header('Cache-Control', `public, max-age=${policy.maxAgeSeconds}`);
      reply.type(format === 'jpg' ? 'image/jpeg' : `image/${format}`);
      return reply.send(body);
    },
  );
}

function sendRaw(reply: FastifyReply, pixels: DecodedImage) {
  const body = Buffer.from(pixels.data.buffer, pixels.data.byteOffset, pixels.data.byteLength);
  return sendRawBytes(reply, body, pixels.width, pixels.height, pixels.channels);
}

function sendRawBytes(reply: FastifyReply, body: Buffer, width: number, height: number, channels = 3) {
  reply.header('X-Region-Width', String(width));
  reply.header('X-Region-Height', String(height));
  reply.header('X-Region-Channels', String(channels));
  reply.header('Cache-Control', 'no-store');
  reply.type('application/octet-stream');
  return reply.send(body);
}

function parseInteger(
  raw: string | undefined,
  name: string,
  options: { min: number; code?: 'bad_request' | 'invalid_level' },
): number {
  if (raw === undefined) throw new BadRequest(`${name} is required`);
  const n = /^-?\d{1,10}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= options.min && n <= 2 ** 31)) {
    throw new BadRequest(
      `${name} must be an integer ≥ ${options.min}, got ${JSON.stringify(raw)}`,
      options.code ?? 'bad_request',
    );
  }
  return n;
}
