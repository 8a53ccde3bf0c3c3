// The access log (`--access-log`, on by default): one info-level JSON line per response
// ("request completed" with the request id, method, URL, client address, status and response
// time) instead of Fastify's two per request ("incoming request" + "request completed"); off, the
// hot path logs nothing. Failed responses are logged at error level either way.
// `--access-log-sample N` writes the line of one response in N (AccessLogSampler, shared with
// the cached-image fast path), for servers whose access log costs more than it tells.
// The fast path's line (DirectAccessLog) is written without pino's per-call work, in exactly the
// shape pino gives it under the server's logger options (loggerOptions, which app.ts uses).

import { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify';
import { pino, type Logger, type LoggerOptions } from 'pino';
import { redactUrl, serializeRequest } from './log-redact.js';

/** The server's pino options (app.ts adds the destination). */
export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: ['req.headers.authorization', 'req.headers.cookie'],
    // Fastify's own request serializer, with credentials taken out of the URL.
    serializers: { req: serializeRequest },
  };
}

/** What one fast-path answer logs. */
export interface FastAccess {
  reqId: string;
  method: string;
  url: string;
  host: string | undefined;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  statusCode: number;
  responseTime: number;
}

/**
 * The fast path's access-log line, `log.info({ reqId, req, res, responseTime, fastPath: true },
 * 'request completed')` as pino writes it under `loggerOptions` (the logger's own level, time,
 * bindings and destination; the URL redacted by the same rule), built as one string instead of
 * through pino's serializers and redaction: with 2 workers that was ~25 % of a cached tile's
 * throughput on this project's machine. test/server/access-log.test.ts holds the two equal.
 */
export class DirectAccessLog {
  private readonly stream: { write(line: string): void };
  private readonly head: string;
  private readonly bindings: string;
  private readonly log: Logger;

  /** `log`: the server's logger, which Fastify builds with pino (app.ts). */
  constructor(log: FastifyBaseLogger) {
    this.log = log as Logger;
    const internals = log as unknown as Record<symbol, unknown>;
    this.stream = internals[pino.symbols.streamSym] as { write(line: string): void };
    this.bindings = internals[pino.symbols.chindingsSym] as string;
    this.head = `{"level":${this.log.levels.values.info},"time":`;
  }

  write(a: FastAccess): void {
    if (!this.log.isLevelEnabled('info')) return;
    // pino leaves out undefined fields (a socket already closed): rare, so pino writes that line.
    if (a.host === undefined || a.remoteAddress === undefined || a.remotePort === undefined) {
      const { reqId, method, url, host, remoteAddress, remotePort, statusCode, responseTime } = a;
      const req = { method, url, host, remoteAddress, remotePort };
      this.log.info({ reqId, req, res: { statusCode }, responseTime, fastPath: true }, 'request completed');
      return;
    }
    this.stream.write(
      `${this.head}${Date.now()}${this.bindings},"reqId":${JSON.stringify(a.reqId)},"req":{"method":${JSON.stringify(a.method)},"url":${JSON.stringify(redactUrl(a.url))},"host":${JSON.stringify(a.host)},"remoteAddress":${JSON.stringify(a.remoteAddress)},"remotePort":${a.remotePort}},"res":{"statusCode":${a.statusCode}},"responseTime":${a.responseTime},"fastPath":true,"msg":"request completed"}\n`,
    );
  }
}

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
