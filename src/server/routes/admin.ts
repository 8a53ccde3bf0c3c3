// Operator routes for the radiology catalog: start a re-index (POST /admin/reindex, answered 202
// at once, or 200 with the summary with ?wait=true), the indexer's status and catalog counts
// (GET /admin/index), and the objects that could not be indexed or are duplicates
// (GET /admin/index/errors). With --auth-enabled they need a signed URL like every other route.

import type { FastifyInstance } from 'fastify';
import type { Catalog } from '../../catalog/catalog.js';
import type { IndexService } from '../../catalog/index-service.js';

export function registerAdminRoutes(app: FastifyInstance, catalog: Catalog, index: IndexService): void {
  app.post<{ Querystring: { wait?: string } }>('/admin/reindex', async (request, reply) => {
    const scan = index.reindex();
    if (request.query.wait === 'true') return reply.send({ summary: await scan });
    scan.catch(() => undefined); // failures are logged and kept in the status
    return reply.code(202).send({ status: index.status() });
  });
  app.get('/admin/index', async () => ({
    catalog: catalog.description,
    status: index.status(),
    counts: await catalog.counts(),
  }));
  app.get<{ Querystring: { limit?: string } }>('/admin/index/errors', async (request) => {
    const limit = Math.min(Math.max(Number(request.query.limit ?? 1000) || 1000, 1), 100_000);
    return { problems: await catalog.problems(limit) };
  });
}
