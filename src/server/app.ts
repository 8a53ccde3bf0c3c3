// Builds the Fastify application: logging with request ids, CORS, gzip for JSON, the error
// mapping, and every route module. It receives ready-made objects (storage, tile service,
// statistics) from cli/ and creates none of its own, so tests can build it around real
// components and inject requests.

import compress from '@fastify/compress';
import cors from '@fastify/cors';
import Fastify, { type FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { Storage } from '../storage/types.js';
import type { TileService } from '../tiles/tile-service.js';
import { registerAuth, type AuthOptions, type ViewerTokenIssuer } from './auth.js';
import { registerAccessLog } from './access-log.js';
import { errorHandler, notFoundHandler } from './errors.js';
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
}

export async function buildServer(deps: ServerDependencies): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: deps.logLevel,
      redact: ['req.headers.authorization', 'req.headers.cookie'],
    },
    // Honour an upstream request id (load balancer, gateway) so logs line up end to end.
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // Slide ids are URL-encoded keys and may be long; Fastify's default is 100.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 2048 },
    // Malformed percent-encoding and the like fail in the router, before any route: answer them
    // in the same JSON shape as every other error.
    frameworkErrors: errorHandler,
    // Fastify's own request logging writes two lines per request; ours (below) writes one, and
    // none with --no-access-log.
    disableRequestLogging: true,
  });
  // Callback-style hooks: no promise per request on the hot path.
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    done(null, payload);
  });
  if (deps.accessLog !== false) registerAccessLog(app);
  app.setErrorHandler(errorHandler);
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
  registerAuth(app, auth);
  const metrics = createMetrics(app, deps);
  registerHealthRoutes(app, metrics);
  registerSlideListRoutes(app, deps.storage);
  const policy = { maxAgeSeconds: deps.cacheMaxAgeSeconds };
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
