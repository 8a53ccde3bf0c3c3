// A real HTTP reverse proxy on 127.0.0.1 that injects faults into chosen requests, for storage,
// fault and benchmark tests. It sits in front of any plain-HTTP origin (s3rver, a node:http
// Range server) and forwards requests byte for byte, Host header included, so SigV4 signatures
// made for the proxy's address stay valid at the origin.
//
//   client --> FaultProxy (127.0.0.1:port) --[fault or pass]--> upstream origin
//
// Usage:
//   const proxy = await startFaultProxy(s3.endpoint);
//   proxy.plan([{ fault: '503' }, { fault: 'reset' }, { fault: 'delay', ms: 300 }]); // next 3 requests
//   proxy.always({ fault: '503' });           // every later request (a store that is down)
//   proxy.plan([{ fault: 'truncate' }], { match: (r) => r.method === 'GET' }); // only GETs count
//   ...; await proxy.idle(); expect(proxy.log.map((e) => e.clientAborted)) ...
// A planned fault wins over `always`; requests that no fault matches pass through unchanged.

import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What to do with one request. */
export type Fault =
  /** Forward unchanged. */
  | { fault: 'pass' }
  /** Answer 500 InternalError (S3-style XML body) without contacting the origin. */
  | { fault: '500' }
  /** Answer 503 ServiceUnavailable without contacting the origin. */
  | { fault: '503' }
  /** Answer 503 with S3's `SlowDown` throttling error. */
  | { fault: 'slowdown' }
  /** Answer any status with an S3-style error body; `code` defaults from the status (403 AccessDenied, ...). */
  | { fault: 'status'; status: number; code?: string; message?: string }
  /** Reset the TCP connection (RST) before any response byte: the client sees ECONNRESET. */
  | { fault: 'reset' }
  /**
   * Hold the request for `ms` before forwarding it, so the first response byte is late. A client
   * that hangs up meanwhile is logged as aborted and the origin never sees the request.
   */
  | { fault: 'delay'; ms: number }
  /** Forward, then send the response body `chunkBytes` (default 1024) at a time every `intervalMs`. */
  | { fault: 'slow-body'; intervalMs: number; chunkBytes?: number }
  /**
   * Forward status and headers (Content-Length included), send only `keepBytes` of the body
   * (default: half of it), then close the connection: a Content-Length mismatch. With
   * `withoutLength`, Content-Length is dropped and the body is delimited by closing the
   * connection, so the client sees a clean end of body and can only notice by counting bytes.
   */
  | { fault: 'truncate'; keepBytes?: number; withoutLength?: boolean };

export type FaultName = Fault['fault'];

/** What a fault is chosen on. */
export interface ProxyRequestInfo {
  method: string;
  /** Path and query as sent by the client. */
  path: string;
  range?: string;
}

export interface FaultOptions {
  /** Only requests for which this returns true consume (or get) the fault; others pass. */
  match?: (request: ProxyRequestInfo) => boolean;
}

/** One request the proxy saw. Entries are updated in place until `done`. */
export interface ProxyLogEntry extends ProxyRequestInfo {
  /** 1-based arrival number. */
  seq: number;
  fault: FaultName;
  /** Status sent to the client; undefined when none was sent (reset, abort during delay). */
  status?: number;
  /** Response body bytes written to the client. */
  bodyBytes: number;
  /** The client closed the connection before the response was complete. */
  clientAborted: boolean;
  /** The response is finished or the connection is gone. */
  done: boolean;
  startedAt: number;
  endedAt?: number;
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: use it where the origin's URL would go. */
  readonly url: string;
  readonly port: number;
  /** Every request seen, in arrival order. */
  readonly log: readonly ProxyLogEntry[];
  /** Number of requests seen (`log.length`). */
  readonly requestCount: number;
  /** The next requests (matching `options.match`) get these faults, one each, in order. */
  plan(faults: Fault[], options?: FaultOptions): void;
  /** Every request (matching `options.match`) not served by the plan gets this fault; null clears it. */
  always(fault: Fault | null, options?: FaultOptions): void;
  /** Planned faults not used yet. */
  readonly pending: number;
  /** Clears plan, `always` and the log. */
  reset(): void;
  /** Resolves once every request seen so far is done (so `clientAborted` is final). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

interface Rule {
  fault: Fault;
  match?: FaultOptions['match'];
}

const DEFAULT_ERROR_CODES: Record<number, string> = {
  400: 'InvalidRequest',
  403: 'AccessDenied',
  404: 'NoSuchKey',
  412: 'PreconditionFailed',
  416: 'InvalidRange',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
};

/** Starts a proxy in front of `upstream` (an `http://host:port` origin; TLS origins are not supported). */
export async function startFaultProxy(upstream: string | URL): Promise<FaultProxy> {
  const origin = new URL(upstream);
  if (origin.protocol !== 'http:') throw new Error(`fault proxy needs an http:// origin, got ${origin.href}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const log: ProxyLogEntry[] = [];
  const inFlight = new Set<Promise<void>>();
  let planned: Rule[] = [];
  let always: Rule | null = null;

  const choose = (info: ProxyRequestInfo): Fault => {
    const next = planned[0];
    if (next && (!next.match || next.match(info))) {
      planned.shift();
      return next.fault;
    }
    if (always && (!always.match || always.match(info))) return always.fault;
    return { fault: 'pass' };
  };

  const server = http.createServer((req, res) => {
    const info: ProxyRequestInfo = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      ...(req.headers.range === undefined ? {} : { range: req.headers.range }),
    };
    const fault = choose(info);
    const entry: ProxyLogEntry = {
      ...info,
      seq: log.length + 1,
      fault: fault.fault,
      bodyBytes: 0,
      clientAborted: false,
      done: false,
      startedAt: Date.now(),
    };
    log.push(entry);
    const exchange = new Exchange(req, res, entry);
    inFlight.add(exchange.closed);
    void exchange.closed.then(() => inFlight.delete(exchange.closed));
    exchange.serve(fault, origin, agent);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    log,
    get requestCount() {
      return log.length;
    },
    get pending() {
      return planned.length;
    },
    plan(faults, options) {
      planned = planned.concat(faults.map((fault) => ({ fault, match: options?.match })));
    },
    always(fault, options) {
      always = fault === null ? null : { fault, match: options?.match };
    },
    reset() {
      planned = [];
      always = null;
      log.length = 0;
    },
    async idle() {
      while (inFlight.size > 0) await Promise.all(inFlight);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

/** One request/response pair going through the proxy. */
class Exchange {
  /** Resolves when the response is finished or the connection is gone. */
  readonly closed: Promise<void>;
  private clientGone = false;
  /** The proxy itself cut the connection (reset, truncate): not a client abort. */
  private cutByProxy = false;
  private readonly cleanups: Array<() => void> = [];

  constructor(
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
    private readonly entry: ProxyLogEntry,
  ) {
    this.closed = new Promise((resolve) => {
      res.once('close', () => {
        this.clientGone = true;
        entry.clientAborted = !res.writableFinished && !this.cutByProxy;
        entry.done = true;
        entry.endedAt = Date.now();
        for (const cleanup of this.cleanups) cleanup();
        resolve();
      });
    });
  }

  serve(fault: Fault, origin: URL, agent: http.Agent): void {
    switch (fault.fault) {
      case '500':
        return this.answer(500, 'InternalError', 'We encountered an internal error. Please try again.');
      case '503':
        return this.answer(503, 'ServiceUnavailable', 'Service is unable to handle request.');
      case 'slowdown':
        return this.answer(503, 'SlowDown', 'Please reduce your request rate.');
      case 'status':
        return this.answer(
          fault.status,
          fault.code ?? DEFAULT_ERROR_CODES[fault.status] ?? 'Error',
          fault.message ?? `fault proxy answered ${fault.status}`,
        );
      case 'reset':
        this.cutByProxy = true;
        this.req.socket.resetAndDestroy();
        return;
      case 'delay': {
        const timer = setTimeout(() => this.forward(origin, agent, fault), fault.ms);
        this.cleanups.push(() => clearTimeout(timer));
        return;
      }
      default:
        return this.forward(origin, agent, fault);
    }
  }

  private answer(status: number, code: string, message: string): void {
    this.req.resume();
    const body =
      '<?xml version="1.0" encoding="UTF-8"?>\n' +
      `<Error><Code>${code}</Code><Message>${message}</Message>` +
      `<RequestId>fault-proxy-${this.entry.seq}</RequestId></Error>`;
    this.entry.status = status;
    this.res.writeHead(status, {
      'Content-Type': 'application/xml',
      'Content-Length': Buffer.byteLength(body),
    });
    this.res.end(body);
    if (this.req.method !== 'HEAD') this.entry.bodyBytes = Buffer.byteLength(body);
  }

  private forward(origin: URL, agent: http.Agent, fault: Fault): void {
    if (this.clientGone) return;
    const upstreamReq = http.request({
      host: origin.hostname,
      port: origin.port,
      method: this.req.method,
      path: this.req.url,
      headers: this.req.headers,
      agent,
    });
    this.cleanups.push(() => upstreamReq.destroy());
    upstreamReq.on('error', () => {
      if (this.clientGone) return;
      if (this.res.headersSent) {
        this.cutByProxy = true;
        this.res.destroy();
      } else {
        this.answer(502, 'BadGateway', 'fault proxy could not reach the origin');
      }
    });
    upstreamReq.on('response', (upstreamRes) => {
      if (this.clientGone) return void upstreamRes.destroy();
      this.entry.status = upstreamRes.statusCode ?? 502;
      let write: (part: Buffer) => void = (part) => void this.res.write(part);
      if (fault.fault === 'truncate' && fault.withoutLength) {
        write = this.writeCloseDelimitedHead(upstreamRes);
      } else {
        this.res.writeHead(this.entry.status, upstreamRes.statusMessage, upstreamRes.rawHeaders);
      }
      void this.sendBody(upstreamRes, fault, write).catch(() => {
        this.cutByProxy = !this.clientGone;
        this.res.destroy();
      });
    });
    this.req.pipe(upstreamReq);
  }

  /**
   * Writes the upstream status and headers straight to the socket, minus Content-Length and
   * keep-alive, so the body ends where the connection does (HTTP/1.1 close-delimited body; Node's
   * ServerResponse would switch to chunked encoding instead). Returns the raw body writer.
   */
  private writeCloseDelimitedHead(upstreamRes: http.IncomingMessage): (part: Buffer) => void {
    const socket = this.req.socket;
    this.cutByProxy = true;
    const lines = [`HTTP/1.1 ${upstreamRes.statusCode} ${upstreamRes.statusMessage ?? ''}`];
    const raw = upstreamRes.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      if (!/^(content-length|connection|keep-alive|transfer-encoding)$/i.test(raw[i])) {
        lines.push(`${raw[i]}: ${raw[i + 1]}`);
      }
    }
    lines.push('Connection: close');
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    return (part) => void socket.write(part);
  }

  private async sendBody(
    body: http.IncomingMessage,
    fault: Fault,
    write: (part: Buffer) => void,
  ): Promise<void> {
    const declared = Number(body.headers['content-length']);
    const keep =
      fault.fault === 'truncate'
        ? (fault.keepBytes ?? (Number.isFinite(declared) ? Math.floor(declared / 2) : 0))
        : Infinity;
    if (fault.fault === 'truncate' && keep === 0) return this.cut(body);
    for await (const chunk of body as AsyncIterable<Buffer>) {
      const slices = fault.fault === 'slow-body' ? split(chunk, fault.chunkBytes ?? 1024) : [chunk];
      for (const slice of slices) {
        if (this.clientGone) return void body.destroy();
        const part = slice.subarray(0, keep - this.entry.bodyBytes);
        write(part);
        this.entry.bodyBytes += part.length;
        if (this.entry.bodyBytes >= keep) return this.cut(body);
        if (fault.fault === 'slow-body') await pause(fault.intervalMs);
      }
    }
    this.res.end();
  }

  /** Ends the exchange early: the client gets fewer body bytes than Content-Length promised. */
  private cut(body: http.IncomingMessage): void {
    body.destroy();
    this.cutByProxy = true;
    // Let the bytes already written leave before the socket goes.
    this.res.socket?.end();
    this.res.socket?.destroySoon();
  }
}

function split(chunk: Buffer, size: number): Buffer[] {
  const slices: Buffer[] = [];
  for (let i = 0; i < chunk.length; i += size) slices.push(chunk.subarray(i, i + size));
  return slices;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
