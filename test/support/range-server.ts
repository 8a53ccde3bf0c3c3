// A real node:http file server on 127.0.0.1 for storage tests: serves a directory with HEAD,
// single byte ranges (206 / 416), strong ETag + Last-Modified, If-Match / If-Unmodified-Since
// (412), optional nginx-style autoindex (JSON or HTML), and knobs to misbehave on purpose.
//
//   const server = await RangeServer.start({ root: dir });
//   server.url                  'http://127.0.0.1:PORT/' (files are root-relative paths)
//   server.ignoreRange = true   answer GET with 200 and the whole file (Range ignored)
//   server.noHead = true        answer HEAD with 405
//   server.autoindex = 'json'   directories (URL ending in /) list as nginx `autoindex_format json`;
//                     'html'   as an nginx-like HTML page; false (default): 403, like nginx
//   server.validators = 'weak' | 'none'   ETag W/"…" or no ETag (Last-Modified only); default 'strong'
//   server.failNext(n, kind)    the next n requests (any method) misbehave; kinds:
//       a status number (503, 429, 500, 404, 416, …)  that status, empty body (416 carries
//                               `Content-Range: bytes */size`, 503/429 `Retry-After: 1`)
//       'reset'                 destroy the socket before answering
//       'delay:MS'              wait MS before answering normally (a client that leaves meanwhile
//                               is counted in clientAborted)
//       'truncate'              correct status and headers but no Content-Length; half the body,
//                               then a clean end of the chunked response
//       'cut'                   full Content-Length, half the body, then destroy the socket
//   server.requests             [{method, path, range, status}] in arrival order (path as sent)
//   server.bytesSent            body bytes handed to sockets
//   server.clientAborted        responses whose connection closed before the response finished
//   server.resetCounters(); await server.close()

import { createReadStream, promises as fs } from 'node:fs';
import type { Stats } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export type FaultKind = number | 'reset' | `delay:${number}` | 'truncate' | 'cut';

export interface RangeServerOptions {
  root: string;
  ignoreRange?: boolean;
  noHead?: boolean;
  autoindex?: 'json' | 'html' | false;
  validators?: 'strong' | 'weak' | 'none';
}

export interface RecordedRequest {
  method: string;
  path: string;
  range: string | undefined;
  /** 0 until the response head is sent (and for faults that never answer). */
  status: number;
}

export class RangeServer {
  ignoreRange: boolean;
  noHead: boolean;
  autoindex: 'json' | 'html' | false;
  validators: 'strong' | 'weak' | 'none';
  requests: RecordedRequest[] = [];
  bytesSent = 0;
  clientAborted = 0;
  private readonly faults: FaultKind[] = [];

  private constructor(
    private readonly server: http.Server,
    readonly root: string,
    options: RangeServerOptions,
  ) {
    this.ignoreRange = options.ignoreRange ?? false;
    this.noHead = options.noHead ?? false;
    this.autoindex = options.autoindex ?? false;
    this.validators = options.validators ?? 'strong';
  }

  static async start(options: RangeServerOptions): Promise<RangeServer> {
    const server = http.createServer();
    const instance = new RangeServer(server, path.resolve(options.root), options);
    server.on('request', (req, res) => {
      instance.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) res.writeHead(500).end(String(e));
        else res.destroy();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return instance;
  }

  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/`;
  }

  failNext(n: number, kind: FaultKind): void {
    for (let i = 0; i < n; i++) this.faults.push(kind);
  }

  /** Requests whose method is `method` (e.g. only the GETs a read sent). */
  requestsOf(method: string): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method);
  }

  resetCounters(): void {
    this.requests = [];
    this.bytesSent = 0;
    this.clientAborted = 0;
    this.faults.length = 0;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const record: RecordedRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      range: req.headers.range,
      status: 0,
    };
    this.requests.push(record);
    res.on('close', () => {
      if (!res.writableFinished) this.clientAborted++;
    });
    const writeHead = res.writeHead.bind(res);
    res.writeHead = ((status: number, ...rest: unknown[]) => {
      record.status = status;
      return (writeHead as (...args: unknown[]) => http.ServerResponse)(status, ...rest);
    }) as typeof res.writeHead;

    let fault = this.faults.shift();
    if (fault === 'reset') {
      req.socket.destroy();
      return;
    }
    if (typeof fault === 'string' && fault.startsWith('delay:')) {
      const ms = Number(fault.slice('delay:'.length));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        res.on('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (res.destroyed || res.writableEnded) return;
      fault = undefined;
    }
    const target = this.resolve(req.url ?? '/');
    const stats = target === undefined ? undefined : await fs.stat(target).catch(() => undefined);
    if (typeof fault === 'number') {
      const headers: http.OutgoingHttpHeaders = {};
      if (fault === 416 && stats?.isFile()) headers['Content-Range'] = `bytes */${stats.size}`;
      if (fault === 503 || fault === 429) headers['Retry-After'] = '1';
      res.writeHead(fault, headers).end();
      return;
    }
    if (target === undefined || stats === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    if (stats.isDirectory()) return this.serveDirectory(req, res, target);
    if (!stats.isFile()) {
      res.writeHead(404).end();
      return;
    }
    this.serveFile(req, res, target, stats, fault as 'truncate' | 'cut' | undefined);
  }

  /** The file system path a URL names, or undefined when it is not inside the root. */
  private resolve(url: string): string | undefined {
    const pathname = new URL(url, 'http://localhost').pathname;
    let segments: string[];
    try {
      segments = pathname.split('/').map(decodeURIComponent);
    } catch {
      return undefined;
    }
    if (segments.some((s) => s === '..' || s.includes('/') || s.includes('\0'))) return undefined;
    const full = path.join(this.root, ...segments);
    return full === this.root || full.startsWith(this.root + path.sep) ? full : undefined;
  }

  private serveFile(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    file: string,
    stats: Stats,
    fault: 'truncate' | 'cut' | undefined,
  ): void {
    const etag = `"${stats.size.toString(16)}-${Math.floor(stats.mtimeMs).toString(16)}"`;
    const lastModified = new Date(Math.floor(stats.mtimeMs / 1000) * 1000);
    const headers: http.OutgoingHttpHeaders = {
      'Accept-Ranges': 'bytes',
      'Content-Type': 'application/octet-stream',
      'Last-Modified': lastModified.toUTCString(),
    };
    if (this.validators === 'strong') headers.ETag = etag;
    if (this.validators === 'weak') headers.ETag = `W/${etag}`;

    if (req.method === 'HEAD' && this.noHead) {
      res.writeHead(405, { Allow: 'GET' }).end();
      return;
    }
    if (req.method !== 'HEAD' && req.method !== 'GET') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    // RFC 9110 §13.2.2: preconditions are evaluated before Range.
    const ifMatch = req.headers['if-match'];
    if (ifMatch !== undefined) {
      const matches = ifMatch
        .split(',')
        .map((s) => s.trim())
        .some((tag) => tag === '*' || (this.validators === 'strong' && tag === etag));
      if (!matches) {
        res.writeHead(412).end();
        return;
      }
    } else if (req.headers['if-unmodified-since'] !== undefined) {
      const since = Date.parse(req.headers['if-unmodified-since']);
      if (!Number.isNaN(since) && lastModified.getTime() > since) {
        res.writeHead(412).end();
        return;
      }
    }

    let start = 0;
    let end = stats.size - 1;
    let status = 200;
    const range = req.headers.range;
    if (range !== undefined && !this.ignoreRange) {
      const parsed = parseRange(range, stats.size);
      if (parsed === 'unsatisfiable') {
        res.writeHead(416, { 'Content-Range': `bytes */${stats.size}` }).end();
        return;
      }
      if (parsed !== undefined) {
        [start, end] = parsed;
        status = 206;
        headers['Content-Range'] = `bytes ${start}-${end}/${stats.size}`;
      }
    }
    const length = end - start + 1;
    if (fault !== 'truncate') headers['Content-Length'] = String(length);
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || length === 0) {
      res.end();
      return;
    }
    const sendLength = fault === undefined ? length : Math.floor(length / 2);
    const stream = createReadStream(file, { start, end: start + sendLength - 1 });
    stream.on('data', (chunk) => {
      this.bytesSent += chunk.length;
      if (!res.write(chunk)) {
        stream.pause();
        res.once('drain', () => stream.resume());
      }
    });
    stream.on('end', () => {
      if (fault === 'cut') res.destroy();
      else res.end();
    });
    stream.on('error', () => res.destroy());
    res.on('close', () => stream.destroy());
  }

  private async serveDirectory(req: http.IncomingMessage, res: http.ServerResponse, dir: string) {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (this.autoindex === false || !pathname.endsWith('/')) {
      res.writeHead(403, { 'Content-Type': 'text/html' }).end('<html><body>403 Forbidden</body></html>');
      return;
    }
    // nginx's autoindex leaves out names starting with a dot.
    const names = (await fs.readdir(dir)).filter((n) => !n.startsWith('.')).sort();
    const entries = await Promise.all(
      names.map(async (name) => ({ name, stats: await fs.stat(path.join(dir, name)) })),
    );
    if (this.autoindex === 'json') {
      const body = JSON.stringify(
        entries.map(({ name, stats }) =>
          stats.isDirectory()
            ? { name, type: 'directory', mtime: stats.mtime.toUTCString() }
            : { name, type: 'file', mtime: stats.mtime.toUTCString(), size: stats.size },
        ),
      );
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(body);
      return;
    }
    const rows = entries.map(({ name, stats }) => {
      const href = encodeURIComponent(name) + (stats.isDirectory() ? '/' : '');
      const label = escapeHtml(name) + (stats.isDirectory() ? '/' : '');
      return `<a href="${href}">${label}</a>   ${stats.mtime.toUTCString()}   ${stats.isDirectory() ? '-' : stats.size}`;
    });
    // Links that are not entries, as real index pages have them: parent, sort order, absolute.
    const body = [
      `<html><head><title>Index of ${escapeHtml(pathname)}</title></head><body>`,
      `<h1>Index of ${escapeHtml(pathname)}</h1><a href="?C=N;O=D">Name</a> <a href="/">home</a>`,
      `<a href="http://example.invalid/elsewhere">elsewhere</a><hr><pre><a href="../">../</a>`,
      ...rows,
      '</pre><hr></body></html>',
    ].join('\n');
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(body);
  }
}

/** One `bytes=` range as [first, last], 'unsatisfiable', or undefined to ignore (multi-range). */
function parseRange(header: string, size: number): [number, number] | 'unsatisfiable' | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null || (match[1] === '' && match[2] === '')) return undefined;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return [Math.max(0, size - suffix), size - 1];
  }
  const first = Number(match[1]);
  const last = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (first >= size || last < first) return 'unsatisfiable';
  return [first, last];
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
