// IIIF Image API 3.0, compliance level 2, plus mirroring, arbitrary rotation and upscaling:
//   GET /iiif/3/{id}                                       303 → info.json
//   GET /iiif/3/{id}/info.json                             image information (tiles = native levels)
//   GET /iiif/3/{id}/{region}/{size}/{rotation}/{quality}.{format}
// Parsing follows https://iiif.io/api/image/3.0/ §4 (region, size, rotation, quality, format);
// a request that is malformed or asks for more than the limits in info.json is a 400. Tile
// requests that equal a stored JPEG tile pass it through (render.ts `storedTileFor`).

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BadRequest } from '../../errors.js';
import { parseImageFormat } from '../../tiles/encode.js';
import type { RenderRequest, TileService } from '../../tiles/tile-service.js';
import { clientAbortSignal } from '../abort.js';
import { sendImage, type CachePolicy } from '../image-reply.js';

const CONTEXT = 'http://iiif.io/api/image/3/context.json';
const PROFILE_LINK = '<http://iiif.io/api/image/3/level2.json>;rel="profile"';
/** Largest output side: WebP's limit, and far beyond any viewer's tile. */
export const IIIF_MAX_SIDE = 16383;

export interface IiifLimits {
  /** maxArea: pixels of the largest image returned. */
  maxRegionPixels: number;
}

/** A rectangle in level-0 pixels. */
interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

type Quality = 'default' | 'color' | 'gray' | 'bitonal';

export function registerIiifRoutes(
  app: FastifyInstance,
  tiles: TileService,
  policy: CachePolicy,
  limits: IiifLimits,
): void {
  app.get<{ Params: { id: string } }>('/iiif/3/:id', async (request, reply) => {
    // The query (a viewer token, say) travels along: the redirect must not lose the credentials.
    const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : '';
    return reply.redirect(`${baseUri(request, request.params.id)}/info.json${query}`, 303);
  });

  app.get<{ Params: { id: string } }>('/iiif/3/:id/info.json', async (request, reply) => {
    const { slide } = await tiles.slide(request.params.id, clientAbortSignal(reply));
    // Scale factors must be integers; native levels of real slides sit within a hair of them.
    const byTileSize = new Map<string, { width: number; height: number; scaleFactors: number[] }>();
    for (const level of slide.levels) {
      const key = `${level.tileWidth}x${level.tileHeight}`;
      const entry = byTileSize.get(key) ?? {
        width: level.tileWidth,
        height: level.tileHeight,
        scaleFactors: [],
      };
      const factor = Math.max(1, Math.round(level.downsample));
      if (!entry.scaleFactors.includes(factor)) entry.scaleFactors.push(factor);
      byTileSize.set(key, entry);
    }
    const sizes = slide.levels
      .map((l) => ({ width: l.width, height: l.height }))
      .filter(
        (s) => s.width * s.height <= limits.maxRegionPixels && Math.max(s.width, s.height) <= IIIF_MAX_SIDE,
      )
      .reverse();
    const jsonLd = /application\/ld\+json/.test(request.headers.accept ?? '');
    reply.type(jsonLd ? `application/ld+json;profile="${CONTEXT}"` : 'application/json');
    reply.header('Cache-Control', `private, max-age=${Math.min(policy.maxAgeSeconds, 60)}`);
    reply.header('Link', PROFILE_LINK);
    return {
      '@context': CONTEXT,
      id: baseUri(request, request.params.id),
      type: 'ImageService3',
      protocol: 'http://iiif.io/api/image',
      profile: 'level2',
      width: slide.width,
      height: slide.height,
      maxWidth: IIIF_MAX_SIDE,
      maxHeight: IIIF_MAX_SIDE,
      maxArea: limits.maxRegionPixels,
      sizes,
      tiles: [...byTileSize.values()],
      preferredFormats: ['jpg'],
      extraFormats: ['webp'],
      extraQualities: ['gray', 'bitonal'],
      extraFeatures: ['mirroring', 'rotationArbitrary', 'sizeUpscaling', 'profileLinkHeader'],
    };
  });

  app.get<{ Params: { id: string; region: string; size: string; rotation: string; file: string } }>(
    '/iiif/3/:id/:region/:size/:rotation/:file',
    async (request, reply) => {
      const { id, region, size, rotation, file } = request.params;
      const dot = file.lastIndexOf('.');
      if (dot < 0) throw new BadRequest(`IIIF: ${JSON.stringify(file)} is not {quality}.{format}`);
      const quality = parseQuality(file.slice(0, dot));
      const format = parseImageFormat(file.slice(dot + 1));
      const { mirror, degrees } = parseRotation(rotation);
      const signal = clientAbortSignal(reply);
      const { slide } = await tiles.slide(id, signal);
      const rect = parseRegion(region, slide.width, slide.height);
      const out = parseSize(size, rect, limits.maxRegionPixels);
      const render: RenderRequest = {
        ...rect,
        outWidth: out.width,
        outHeight: out.height,
        format,
        mirror,
        rotation: degrees,
        colour: quality === 'default' ? 'color' : quality,
        signal,
      };
      const image = await tiles.render(id, render);
      reply.header('Link', PROFILE_LINK);
      return sendImage(request, reply, image, policy);
    },
  );
}

function baseUri(request: FastifyRequest, id: string): string {
  return `${request.protocol}://${request.host}/iiif/3/${encodeURIComponent(id)}`;
}

/** §4.1: `full`, `square`, `x,y,w,h` (pixels), `pct:x,y,w,h`; clipped to the image. */
export function parseRegion(text: string, width: number, height: number): Rect {
  let rect: Rect;
  if (text === 'full') return { x: 0, y: 0, width, height };
  if (text === 'square') {
    const side = Math.min(width, height);
    return {
      x: Math.floor((width - side) / 2),
      y: Math.floor((height - side) / 2),
      width: side,
      height: side,
    };
  }
  const pct = text.startsWith('pct:');
  const parts = (pct ? text.slice(4) : text).split(',');
  const number = pct ? /^\d+(\.\d+)?$/ : /^\d{1,10}$/;
  if (parts.length !== 4 || !parts.every((p) => number.test(p))) {
    throw new BadRequest(
      `IIIF: invalid region ${JSON.stringify(text)} (full, square, x,y,w,h or pct:x,y,w,h)`,
    );
  }
  const [a, b, c, d] = parts.map(Number);
  if (pct) {
    // The origin rounds down and a non-zero extent is at least one pixel, so a percentage region
    // that starts inside the image stays inside it however small it is.
    const extent = (pct: number, size: number) => (pct > 0 ? Math.max(1, Math.round((pct * size) / 100)) : 0);
    rect = {
      x: Math.floor((a * width) / 100),
      y: Math.floor((b * height) / 100),
      width: extent(c, width),
      height: extent(d, height),
    };
  } else {
    rect = { x: a, y: b, width: c, height: d };
  }
  if (rect.width <= 0 || rect.height <= 0) throw new BadRequest(`IIIF: region ${text} has no area`);
  if (rect.x >= width || rect.y >= height) {
    throw new BadRequest(`IIIF: region ${text} lies outside the ${width}x${height} image`);
  }
  rect.width = Math.min(rect.width, width - rect.x);
  rect.height = Math.min(rect.height, height - rect.y);
  return rect;
}

/**
 * §4.2: `max`, `w,`, `,h`, `pct:n`, `w,h`, `!w,h`, each with an optional `^` that allows a
 * result larger than the region. Without `^`, asking for more than the region is a 400.
 */
export function parseSize(text: string, region: Rect, maxArea: number): { width: number; height: number } {
  const upscale = text.startsWith('^');
  const body = upscale ? text.slice(1) : text;
  const { width: rw, height: rh } = region;
  const invalid = () =>
    new BadRequest(
      `IIIF: invalid size ${JSON.stringify(text)} (max, w,, ,h, pct:n, w,h or !w,h, optionally ^)`,
    );
  /** The region scaled by at most `cap`, as large as the server's limits allow. */
  const fit = (cap: number) => {
    const s = Math.min(cap, IIIF_MAX_SIDE / rw, IIIF_MAX_SIDE / rh, Math.sqrt(maxArea / (rw * rh)));
    return { width: Math.max(1, Math.floor(rw * s)), height: Math.max(1, Math.floor(rh * s)) };
  };
  let out: { width: number; height: number };
  if (body === 'max') {
    return fit(upscale ? Infinity : 1);
  } else if (body.startsWith('pct:')) {
    const n = /^\d+(\.\d+)?$/.test(body.slice(4)) ? Number(body.slice(4)) : NaN;
    if (!(n > 0)) throw invalid();
    if (n > 100 && !upscale) throw new BadRequest(`IIIF: size ${text} enlarges the region; use ^pct:`);
    out = { width: Math.round((rw * n) / 100), height: Math.round((rh * n) / 100) };
  } else {
    const m = /^(!)?(\d{1,9})?,(\d{1,9})?$/.exec(body);
    if (
      !m ||
      (m[2] === undefined && m[3] === undefined) ||
      (m[1] && (m[2] === undefined || m[3] === undefined))
    ) {
      throw invalid();
    }
    const w = m[2] === undefined ? undefined : Number(m[2]);
    const h = m[3] === undefined ? undefined : Number(m[3]);
    if (m[1]) {
      // !w,h: as large as possible within w x h keeping the aspect (and within the region without ^).
      const s = Math.min(w! / rw, h! / rh, upscale ? Infinity : 1);
      out = {
        width: Math.min(w!, Math.max(1, Math.round(rw * s))),
        height: Math.min(h!, Math.max(1, Math.round(rh * s))),
      };
    } else if (w !== undefined && h !== undefined) {
      out = { width: w, height: h };
    } else if (w !== undefined) {
      out = { width: w, height: Math.round((rh * w) / rw) };
    } else {
      out = { width: Math.round((rw * h!) / rh), height: h! };
    }
    if (!upscale && (out.width > rw || out.height > rh)) {
      throw new BadRequest(`IIIF: size ${text} is larger than the ${rw}x${rh} region; use ^ to upscale`);
    }
  }
  if (out.width < 1 || out.height < 1) throw new BadRequest(`IIIF: size ${text} gives an empty image`);
  if (out.width > IIIF_MAX_SIDE || out.height > IIIF_MAX_SIDE || out.width * out.height > maxArea) {
    throw new BadRequest(
      `IIIF: ${out.width}x${out.height} exceeds the limits (maxWidth/maxHeight ${IIIF_MAX_SIDE}, maxArea ${maxArea})`,
    );
  }
  return out;
}

/** §4.3: `n` or `!n` (mirror first), 0 ≤ n ≤ 360, decimals allowed. */
export function parseRotation(text: string): { mirror: boolean; degrees: number } {
  const mirror = text.startsWith('!');
  const body = mirror ? text.slice(1) : text;
  const degrees = /^\d{1,3}(\.\d+)?$/.test(body) ? Number(body) : NaN;
  if (!(degrees >= 0 && degrees <= 360)) {
    throw new BadRequest(
      `IIIF: invalid rotation ${JSON.stringify(text)} (0-360, optionally prefixed with !)`,
    );
  }
  return { mirror, degrees: degrees % 360 };
}

function parseQuality(text: string): Quality {
  if (text === 'default' || text === 'color' || text === 'gray' || text === 'bitonal') return text;
  throw new BadRequest(`IIIF: invalid quality ${JSON.stringify(text)} (default, color, gray or bitonal)`);
}
