// Operational routes: liveness (`/health`, WSIStreamer's shape), `/version` and the Prometheus
// `/metrics` endpoint.

import type { FastifyInstance } from 'fastify';
import { VERSION } from '../../version.js';
import type { Metrics } from '../metrics.js';

export function registerHealthRoutes(app: FastifyInstance, metrics: Metrics): void {
  app.get('/health', async () => ({ status: 'healthy', version: VERSION }));
  app.get('/version', async () => ({ name: 'medstream', version: VERSION, node: process.version }));
  app.get('/metrics', async (_request, reply) => {
    reply.type(metrics.contentType);
    return metrics.render();
  });
}
