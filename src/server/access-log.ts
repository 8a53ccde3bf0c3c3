// The access log (`--access-log`, on by default): one info-level JSON line per response
// ("request completed" with the request id, method, URL, client address, status and response
// time) instead of Fastify's two per request ("incoming request" + "request completed"); off, the
// hot path logs nothing. Failed responses are logged at error level either way.

import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

export class AccessLogController extends LogController {
  constructor(private readonly accessLog: boolean) {
    super();
  }

  /** Nothing on arrival: the line written on completion carries the request too. */
  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    // Fastify's serializers turn `req` and `res` into {method, url, host, remoteAddress,
    // remotePort} and {statusCode}, the fields of its own two lines.
    if (error)
      reply.log.error(
        { req: request, res: reply, err: error, responseTime: reply.elapsedTime },
        'request errored',
      );
    else if (this.accessLog)
      reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}
