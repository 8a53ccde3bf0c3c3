// The cached-image fast path: a GET or HEAD for a URL that Fastify already answered with an image
// that is still in the in-process tile cache is answered straight from node:http's request
// event, before routing, hooks and the reply object: the same status, body and headers (CORS,
// ETag / 304, Cache-Control, request id, X-Cache, Server-Timing), the same latency metric and
// access-log line. Anything else — a miss, a slide due for revalidation, Range, a server closing
// (app.ts checks) — goes to Fastify as before.
//
// The first answer for a URL (through Fastify) is remembered: its route, its slide and cache key,
// and the headers that do not change per request. Remembered URLs are bounded (oldest dropped).
//
// With auth on, a URL is remembered only after Fastify's hook verified it (a 200), and a signed
// URL or viewer token depends on nothing but the URL and the clock (auth.ts: an HMAC of the URL
// or of the slide id and `exp`, under secrets fixed for the process). So a remembered URL is
// answered while its `exp` (plus the clock skew) has not passed, and handed to Fastify, which
// answers 401, once it has. Heat-map pyramids, whose viewer tokens are checked against their job
// on every request, are never remembered under auth.

import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeader, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import type { ImageResult, TileService } from '../tiles/tile-service.js';
import { matchesEtag } from './image-reply.js';
import { DirectAccessLog, type AccessLogSampler } from './access-log.js';
import { expiryOf, isHeatmapPyramid } from './auth.js';
import type { Metrics } from './metrics.js';

/** Headers that differ per request or per body: set for each answer, never replayed. */
const PER_REQUEST = new Set([
  'x-request-id',
  'x-tile-cache-hit',
  'x-cache',
  'server-timing',
  'content-type',
  'content-length',
  'date',
  'connection',
  'keep-alive',
  'transfer-encoding',
]);

interface Remembered {
  slideId: string;
  key: string;
  /** The route pattern, the latency histogram's label. */
  route: string;
  /**
   * The replayed headers and the constant ones of a hit, as writeHead's flat [name, value, ...]
   * list: built once, copied per answer (no object spread per request).
   */
  headers: OutgoingHttpHeader[];
  /** With auth on: the last second (Unix time) the URL's signature or token is accepted. */
  acceptedUntil?: number;
}

/** The headers every hit carries. */
const HIT_HEADERS = ['x-tile-cache-hit', 'true', 'x-cache', 'memory', 'server-timing', 'cache;desc="hit"'];

export interface FastPathOptions {
  tiles: TileService;
  metrics: Metrics;
  log: FastifyBaseLogger;
  accessLog: boolean;
  /** Which answers get their access-log line (`--access-log-sample`); default every one. */
  sampler?: AccessLogSampler;
  /** URLs remembered at most. */
  maxUrls?: number;
  /** Auth on (signed URLs, viewer tokens): the clock skew allowed past `exp`, and the clock. */
  auth?: { clockSkewSeconds: number; now?: () => number };
}

export class CachedImagePath {
  private readonly urls = new Map<string, Remembered>();
  private readonly pending = new WeakMap<FastifyRequest, ImageResult>();
  private readonly maxUrls: number;
  private readonly accessLog: DirectAccessLog;

  constructor(private readonly options: FastPathOptions) {
    this.maxUrls = options.maxUrls ?? 100_000;
    this.accessLog = new DirectAccessLog(options.log);
  }

  /** `sendImage` calls this for every image it sends; `remember` decides after the response. */
  offer(request: FastifyRequest, image: ImageResult): void {
    if (image.cacheKey !== undefined) this.pending.set(request, image);
  }

  /** From an onResponse hook: remembers a 200 image answer that the tile cache holds. */
  remember(request: FastifyRequest, reply: FastifyReply): void {
    const image = this.pending.get(request);
    if (!image || reply.statusCode !== 200 || request.headers.range !== undefined) return;
    const slideId = (request.params as { id?: unknown } | undefined)?.id;
    const route = request.routeOptions.url;
    if (typeof slideId !== 'string' || route === undefined) return;
    let acceptedUntil: number | undefined;
    const auth = this.options.auth;
    if (auth) {
      const exp = expiryOf(request.url);
      if (exp === undefined || isHeatmapPyramid(slideId)) return;
      acceptedUntil = exp + auth.clockSkewSeconds;
    }
    const headers: Remembered['headers'] = [];
    for (const [name, value] of Object.entries(reply.getHeaders() as OutgoingHttpHeaders))
      if (value !== undefined && !PER_REQUEST.has(name)) headers.push(name, value);
    headers.push(...HIT_HEADERS);
    const url = urlKey(request.url, request.headers.origin);
    if (!this.urls.has(url) && this.urls.size >= this.maxUrls)
      this.urls.delete(this.urls.keys().next().value as string);
    this.urls.set(url, { slideId, key: image.cacheKey!, route, headers, acceptedUntil });
  }

  /** Answers the request and returns true, or returns false and leaves it to Fastify. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const method = req.method;
    if (method !== 'GET' && method !== 'HEAD') return false;
    const headers = req.headers;
    if (headers.range !== undefined) return false;
    const remembered = this.urls.get(urlKey(req.url ?? '', headers.origin));
    if (!remembered) return false;
    // An expired signature or token: Fastify's hook answers 401 (auth.ts, the same comparison).
    if (
      remembered.acceptedUntil !== undefined &&
      Math.floor((this.options.auth?.now ?? Date.now)() / 1000) > remembered.acceptedUntil
    )
      return false;
    const image = this.options.tiles.cachedImage(remembered.slideId, remembered.key);
    if (!image) return false;
    const started = performance.now();
    const given = headers['x-request-id'];
    const reqId = typeof given === 'string' && given !== '' ? given : randomUUID();
    const out = remembered.headers.slice();
    out.push('x-request-id', reqId);
    const notModified = matchesEtag(headers['if-none-match'], image.etag);
    const status = notModified ? 304 : 200;
    if (!notModified) out.push('content-type', image.contentType, 'content-length', image.body.length);
    // The status line, headers and body leave in one write.
    res.writeHead(status, out);
    res.end(notModified || method === 'HEAD' ? undefined : image.body);
    const seconds = (performance.now() - started) / 1000;
    this.options.metrics.observeFast(remembered.route, method, status, seconds);
    if (this.options.accessLog && (this.options.sampler?.take() ?? true))
      this.accessLog.write({
        reqId,
        method,
        url: req.url ?? '',
        host: headers.host,
        remoteAddress: req.socket.remoteAddress,
        remotePort: req.socket.remotePort,
        statusCode: status,
        responseTime: seconds * 1000,
      });
    return true;
  }
}

/** CORS answers depend on the Origin header: it is part of what is remembered. */
function urlKey(url: string, origin: string | undefined): string {
  return origin === undefined ? url : `${url}\n${origin}`;
}
