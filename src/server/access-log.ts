// The access log (`--access-log`, on by default): one info-level JSON line per response, with
// the request id, method, URL, client address, status and response time. It replaces Fastify's
// two lines per request ("incoming request" + "request completed"); off, the hot path logs nothing.

import type { FastifyInstance } from 'fastify';

export function registerAccessLog(app: FastifyInstance): void {
  app.addHook('onResponse', (request, reply, done) => {
    // Fastify's serializers turn these into {method, url, host, remoteAddress, remotePort} and
    // {statusCode}, the fields of its own two lines.
    request.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
    done();
  });
}
