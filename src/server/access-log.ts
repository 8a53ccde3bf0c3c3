// The access log (`--access-log`, on by default): one info-level JSON line per response
// ("request completed" with the request id, method, URL, client address, status and response
// time) instead of Fastify's two per request ("incoming request" + "request completed"); off, the
// hot path logs nothing. Failed responses are logged at error level either way.
// `--access-log-sample N` writes the line of one response in N (AccessLogSampler, shared with
// the cached-image fast path), for servers whose access log costs more than it tells.

import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

/** One response in `every` gets its access-log line (1: every response). */
export class AccessLogSampler {
  private count = 0;

  constructor(readonly every: number) {}

  /** True for the responses whose line is written. */
  take(): boolean {
    if (this.every <= 1) return true;
    this.count = (this.count + 1) % this.every;
    return this.count === 0;
  }
}

export class AccessLogController extends LogController {
  constructor(
    private readonly accessLog: boolean,
    private readonly sampler = new AccessLogSampler(1),
  ) {
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
    else if (this.accessLog && this.sampler.take())
      reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}
