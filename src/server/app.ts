// Builds the Fastify application: logging with request ids, the error mapping, and every route
// module. It receives ready-made objects (storage, caches, statistics) from cli/ and creates
// none of its own, so tests can build it around real components and inject requests.

import Fastify, { type FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { Storage } from '../storage/types.js';
import { errorHandler, notFoundHandler } from './errors.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerSlideListRoutes } from './routes/slides.js';
import { createMetrics, type MetricSources } from './metrics.js';

export interface ServerDependencies extends MetricSources {
  storage: Storage;
  /** pino log level; `silent` in tests. */
  logLevel: string;
}

export function buildServer(deps: ServerDependencies): FastifyInstance {
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
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);

  const metrics = createMetrics(app, deps);
  registerHealthRoutes(app, metrics);
  registerSlideListRoutes(app, deps.storage);
  return app;
}
