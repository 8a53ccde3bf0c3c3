// Sends a rendered image with HTTP caching: strong ETag (object identity + request), 304 on a
// matching If-None-Match, Cache-Control with the configured max-age, X-Tile-Cache-Hit, X-Cache
// (memory | redis | miss), and
// Server-Timing (storage, decode and encode time of the computation, or the cache hit).
// HEAD requests get the same headers without the body (Fastify strips it).

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ImageResult } from '../tiles/tile-service.js';

export interface CachePolicy {
  maxAgeSeconds: number;
  /** Told of every image sent (server/fast-path.ts remembers cached ones). */
  onImage?: (request: FastifyRequest, image: ImageResult) => void;
}

export function sendImage(
  request: FastifyRequest,
  reply: FastifyReply,
  image: ImageResult,
  policy: CachePolicy,
) {
  reply.header('ETag', image.etag);
  reply.header('Cache-Control', `public, max-age=${policy.maxAgeSeconds}`);
  reply.header('X-Tile-Cache-Hit', String(image.cacheHit));
  reply.header('X-Cache', image.cacheLevel ?? 'miss');
  const timing =
    image.cacheLevel === 'redis'
      ? 'cache;desc="redis"'
      : image.cacheHit
        ? 'cache;desc="hit"'
        : image.timings?.header();
  if (timing) reply.header('Server-Timing', timing);
  policy.onImage?.(request, image);
  if (matchesEtag(request.headers['if-none-match'], image.etag)) return reply.code(304).send();
  reply.type(image.contentType);
  return reply.send(image.body);
}

/** RFC 9110 §13.1.2: a list of entity tags or `*`, weak comparison. */
export function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  const bare = etag.replace(/^W\//, '');
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === bare);
}
