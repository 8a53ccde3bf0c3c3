// Builds the Fastify application: logging with request ids, CORS, gzip for JSON, the error
// mapping, and every route module. It receives ready-made objects (storage, tile service,
// statistics) from cli/ and creates none of its own, so tests can build it around real
// components and inject requests.

import compress from '@fastify/compress';
import cors from '@fastify/cors';
import Fastify, { type FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { pino } from 'pino';
import type { Storage } from '../storage/types.js';
import type { TileService } from '../tiles/tile-service.js';
import { registerAuth, type AuthOptions, type ViewerTokenIssuer } from './auth.js';
import { AccessLogController, AccessLogSampler, loggerOptions } from './access-log.js';
import { stdoutSink } from './log-sink.js';
import { errorHandler, notFoundHandler } from './errors.js';
import { CachedImagePath } from './fast-path.js';
import type { CachePolicy } from './image-reply.js';
import { createMetrics, type MetricSources } from './metrics.js';
import { registerAiRoutes } from './routes/ai.js';
import { registerDeepZoomRoutes } from './routes/dzi.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerIiifRoutes } from './routes/iiif.js';
import { registerNativeRoutes } from './routes/native.js';
import { registerRegionRoutes } from './routes/region.js';
import { registerSlideListRoutes } from './routes/slides.js';
import { registerViewerRoutes } from './routes/viewer.js';
import { registerRadiologyRoutes } from './routes/radiology.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerDicomwebRoutes, type DicomwebOptions } from './routes/dicomweb/index.js';
import type { IndexService } from '../catalog/index-service.js';
import { registerProcessLocalGuard, type ProcessLocalOptions } from './process-local.js';
import { registerOhifRoutes, type OhifRouteOptions } from './routes/ohif.js';
import { registerSegmentationRoutes } from './routes/segmentations.js';

export interface ServerDependencies extends MetricSources {
  storage: Storage;
  tiles: TileService;
  /** pino log level; `silent` in tests. */
  logLevel: string;
  cacheMaxAgeSeconds: number;
  /** Largest region read or returned for one request (IIIF maxArea, region API). */
  maxRegionPixels: number;
  /** Allowed CORS origins; `['*']` for any. */
  corsOrigins: string[];
  /** Signed URLs / viewer tokens (server/auth.ts); absent = auth off. */
  auth?: AuthOptions;
  /** Issues viewer tokens for `/view/{id}` when auth is on. */
  viewerTokens?: ViewerTokenIssuer;
  /** The radiology catalog and DICOMweb service; absent = no /dicomweb or /admin routes. */
  radiology?: Omit<DicomwebOptions, 'auth'> & { index: IndexService };
  /** Largest image uploaded for inference, in bytes. */
  aiMaxUploadBytes?: number;
  /** The OHIF viewer at /ohif/ (routes/ohif.ts); absent = not served. */
  ohif?: OhifRouteOptions;
  // `segmentation` (the /segmentations job routes) comes with MetricSources.
  /** One info-level line per response (`--access-log`); default on. */
  accessLog?: boolean;
  /** The access-log line of one response in N (`--access-log-sample`); default 1, every one. */
  accessLogSample?: number;
  /** Log lines written to stdout asynchronously and batched (`--log-async`); default synchronous. */
  logAsync?: boolean;
  /** With several HTTP workers, routes whose state is per process answer 409 (process-local.ts). */
  processLocal?: ProcessLocalOptions;
}

export async function buildServer(deps: ServerDependencies): Promise<FastifyInstance> {
  // Set once the metrics exist (below); the server is built first, by Fastify.
  let fastPath: CachedImagePath | undefined = undefined;
  // One count for both paths, so one line in N whichever path answered.
  const sampler = new AccessLogSampler(deps.accessLogSample ?? 1);
  const app = Fastify({
    // node:http's server as Fastify would build it, with the cached-image fast path in front.
    serverFactory: (handler, options) => {
      const server = http.createServer((req, res) => {
        let answered = false;
        try {
          // Once closing (the listener closed), Fastify answers: 503 and Connection: close.
          answered = server.listening && fastPath !== undefined && fastPath.handle(req, res);
        } catch {
          answered = res.headersSent; // a bug there must not leave the request unanswered
        }
        if (!answered) handler(req, res);
      });
      // Fastify's defaults (72 s keep-alive, no request or connection timeout), as it sets them.
      server.keepAliveTimeout = Number(options.keepAliveTimeout ?? 72_000);
      server.requestTimeout = Number(options.requestTimeout ?? 0);
      server.setTimeout(Number(options.connectionTimeout ?? 0));
      return server;
    },
    logger: {
      ...loggerOptions(deps.logLevel),
      // Asynchronous: a line is queued and written with the ones queued beside it (no write
      // syscall per request); pino flushes what is queued when the process exits. Otherwise
      // synchronous, one write per event-loop turn (log-sink.ts).
      stream: deps.logAsync ? pino.destination({ dest: 1, sync: false }) : stdoutSink(),
    },
    // Honour an upstream request id (load balancer, gateway) so logs line up end to end.
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // Slide ids are URL-encoded keys and may be long; Fastify's default is 100.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 2048 },
    // Malformed percent-encoding and the like fail in the router, before any route: answer them
    // in the same JSON shape as every other error.
    frameworkErrors: errorHandler,
    // One access-log line per response instead of two, none with --no-access-log.
    logController: new AccessLogController(deps.accessLog !== false, sampler),
  });
  // Callback-style hooks: no promise per request on the hot path.
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    done(null, payload);
  });
  app.setErrorHandler(errorHandler);
  if (deps.processLocal) registerProcessLocalGuard(app, deps.processLocal);
  app.setNotFoundHandler(notFoundHandler);
  await app.register(cors, {
    origin: deps.corsOrigins.includes('*') ? '*' : deps.corsOrigins,
    methods: ['GET', 'HEAD', 'POST', 'DELETE', 'OPTIONS'],
    allowedHeaders: [
      'Accept',
      'Range',
      'Authorization',
      'Content-Type',
      'If-None-Match',
      'If-Range',
      'X-Request-Id',
    ],
    exposedHeaders: [
      'ETag',
      'X-Tile-Cache-Hit',
      'X-Cache',
      'X-Request-Id',
      'X-Thumbnail-Requested-Size',
      'X-Thumbnail-Clamped-Size',
      'X-Region-Width',
      'X-Region-Height',
      'X-Region-Channels',
      'X-Region-Level',
      'X-Region-Downsample',
      'X-Region-Mpp',
      'Server-Timing',
      'Content-Range',
      'Content-Length',
      'Content-Type',
      'Warning',
      'Location',
    ],
  });
  // JSON and text only: images are already compressed.
  await app.register(compress, {
    global: true,
    encodings: ['gzip'],
    customTypes: /^(application\/(dicom\+)?json|text\/)/,
  });

  // Before every route: nothing but /health and /assets/ is served without a signature.
  const auth = deps.auth ?? { enabled: false, secrets: [], clockSkewSeconds: 0 };
  // A viewer token for a slide also reaches the heat maps made over it (auth.ts).
  const ai = deps.ai;
  registerAuth(app, ai ? { ...auth, heatmapSlide: (id) => ai.heatmaps.slideOf(id) } : auth);
  const metrics = createMetrics(app, deps);
  // With auth on, a URL is answered by the fast path only after Fastify's hook verified it, and
  // until its signature or token expires (fast-path.ts).
  const fast = new CachedImagePath({
    tiles: deps.tiles,
    metrics,
    log: app.log,
    accessLog: deps.accessLog !== false,
    sampler,
    auth: auth.enabled ? { clockSkewSeconds: auth.clockSkewSeconds, now: auth.now } : undefined,
  });
  app.addHook('onResponse', (request, reply, done) => {
    fast.remember(request, reply);
    done();
  });
  fastPath = fast;
  registerHealthRoutes(app, metrics);
  registerSlideListRoutes(app, deps.storage);
  const policy: CachePolicy = {
    maxAgeSeconds: deps.cacheMaxAgeSeconds,
    onImage: (request, image) => fast.offer(request, image),
  };
  registerNativeRoutes(app, deps.tiles, policy);
  registerDeepZoomRoutes(app, deps.tiles, policy);
  registerIiifRoutes(app, deps.tiles, policy, { maxRegionPixels: deps.maxRegionPixels });
  registerRegionRoutes(app, deps.tiles, policy, { maxRegionPixels: deps.maxRegionPixels });
  if (deps.radiology) {
    registerDicomwebRoutes(app, { ...deps.radiology, auth });
    registerAdminRoutes(app, deps.radiology.catalog, deps.radiology.index);
    registerRadiologyRoutes(app);
  }
  registerViewerRoutes(app, {
    slides: deps.tiles,
    authEnabled: deps.auth?.enabled === true,
    viewerTokens: deps.auth?.enabled === true ? deps.viewerTokens : undefined,
  });
  if (deps.ohif) registerOhifRoutes(app, deps.ohif);
  if (deps.segmentation) registerSegmentationRoutes(app, deps.segmentation);
  if (deps.ai)
    await registerAiRoutes(app, deps.ai, { maxUploadBytes: deps.aiMaxUploadBytes ?? 32 * 1024 * 1024 });
  return app;
}
