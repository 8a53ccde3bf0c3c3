// Stall hunting for the progressive bench (BENCH_PROGRESSIVE_TRACE=DIR): the server's access log
// (one JSON line per response, with its responseTime) and, per run, Chromium's own view of every
// request to the server (CDP: sent, headers, bytes, finished/failed), written side by side, so a
// request the browser waited long on can be matched to when the server answered it.

import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { CDPSession } from 'playwright-core';
import type { ServerProcess } from './tiles.js';

/** A run ends this long after the last network event while requests are still open. */
const STALL_MS = 20_000;

interface Seen {
  url: string;
  /** Epoch ms of each event (from CDP's monotonic timestamps and the send's wall time). */
  sent: number;
  headers?: number;
  status?: number;
  firstByte?: number;
  lastByte?: number;
  bytes: number;
  finished?: number;
  failed?: string;
}

interface Served {
  /** Epoch ms the server finished (or gave up on) the response, and how long it took. */
  time: number;
  url: string;
  status: number;
  responseTime: number;
}

export class RequestTrace {
  private requests = new Map<string, Seen>();
  private served: Served[] = [];
  private lastEvent = Date.now();
  private runs = 0;
  /** CDP monotonic seconds → epoch ms. */
  private offsetMs = NaN;
  /** `ss` of the server's connections when a run stalled. */
  private sockets: string | undefined;
  private port = '';

  private constructor(
    private readonly dir: string,
    private readonly log: WriteStream,
  ) {}

  static async create(dir: string, server: ServerProcess): Promise<RequestTrace> {
    await mkdir(dir, { recursive: true });
    const trace = new RequestTrace(dir, createWriteStream(path.join(dir, 'server.log'), { flags: 'a' }));
    let carry = '';
    server.onOutput((chunk) => {
      trace.log.write(chunk);
      const lines = (carry + chunk.toString()).split('\n');
      carry = lines.pop() ?? '';
      for (const line of lines) {
        try {
          const j = JSON.parse(line) as {
            time?: number;
            req?: { url?: string };
            res?: { statusCode?: number };
            responseTime?: number;
          };
          if (j.req?.url && j.time !== undefined)
            trace.served.push({
              time: j.time,
              url: j.req.url,
              status: j.res?.statusCode ?? 0,
              responseTime: j.responseTime ?? NaN,
            });
        } catch {
          // not a JSON line
        }
      }
    });
    return trace;
  }

  /** Records the requests to `server` this page makes while `counting()` holds. */
  attach(cdp: CDPSession, server: string, counting: () => boolean): void {
    this.requests = new Map();
    this.served = [];
    this.sockets = undefined;
    this.port = new URL(server).port;
    this.offsetMs = NaN;
    const at = (timestamp: number) => timestamp * 1000 + this.offsetMs;
    const touch = (id: string): Seen | undefined => {
      const seen = this.requests.get(id);
      if (seen) this.lastEvent = Date.now();
      return seen;
    };
    cdp.on('Network.requestWillBeSent', (e) => {
      if (!counting() || !e.request.url.startsWith(server)) return;
      if (Number.isNaN(this.offsetMs)) this.offsetMs = e.wallTime * 1000 - e.timestamp * 1000;
      this.requests.set(e.requestId, {
        url: e.request.url.slice(server.length),
        sent: at(e.timestamp),
        bytes: 0,
      });
      this.lastEvent = Date.now();
    });
    cdp.on('Network.responseReceived', (e) => {
      const seen = touch(e.requestId);
      if (seen) {
        seen.headers = at(e.timestamp);
        seen.status = e.response.status;
      }
    });
    cdp.on('Network.dataReceived', (e) => {
      const seen = touch(e.requestId);
      if (!seen) return;
      seen.firstByte ??= at(e.timestamp);
      seen.lastByte = at(e.timestamp);
      seen.bytes += e.dataLength;
    });
    cdp.on('Network.loadingFinished', (e) => {
      const seen = touch(e.requestId);
      if (seen) seen.finished = at(e.timestamp);
    });
    cdp.on('Network.loadingFailed', (e) => {
      const seen = touch(e.requestId);
      if (seen) {
        seen.finished = at(e.timestamp);
        seen.failed = e.errorText;
      }
    });
  }

  /** `running`, or a rejection once requests are open and the network has been silent STALL_MS. */
  race<T>(running: Promise<T>): Promise<T> {
    this.lastEvent = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setInterval(() => {
        const open = [...this.requests.values()].filter((r) => r.finished === undefined).length;
        if (open > 0 && Date.now() - this.lastEvent > STALL_MS) {
          // Where the bytes are: the sockets to and from the server, with their queues.
          this.sockets = sockets(this.port);
          reject(new Error(`stalled: ${open} requests open, no network event for ${STALL_MS / 1000} s`));
        }
      }, 1000);
    });
    return Promise.race([running, stalled]).finally(() => clearInterval(timer));
  }

  /** Writes this run's requests with the server's answers to them, and prints a summary. */
  async save(name: string): Promise<void> {
    this.runs++;
    const seen = [...this.requests.values()];
    const t0 = Math.min(...seen.map((r) => r.sent));
    const rel = (t: number | undefined) => (t === undefined ? null : Math.round(t - t0));
    const rows = seen.map((r) => {
      // The server's line for this URL closest after the send.
      const answer = this.served
        .filter((s) => s.url === r.url && s.time >= r.sent - 1000)
        .sort((a, b) => a.time - b.time)[0];
      return {
        url: r.url,
        sent: rel(r.sent),
        headers: rel(r.headers),
        firstByte: rel(r.firstByte),
        lastByte: rel(r.lastByte),
        finished: rel(r.finished),
        failed: r.failed,
        bytes: r.bytes,
        status: r.status,
        server: answer
          ? {
              arrived: rel(answer.time - answer.responseTime),
              done: rel(answer.time),
              responseTime: Math.round(answer.responseTime),
              status: answer.status,
            }
          : null,
      };
    });
    const file = path.join(this.dir, `run-${this.runs}.json`);
    await writeFile(file, JSON.stringify({ name, sockets: this.sockets, rows }, null, 1));
    const open = rows.filter((r) => r.finished === null);
    const browserMax = Math.max(
      0,
      ...rows.map((r) => (r.finished ?? NaN) - (r.sent ?? 0)).filter(Number.isFinite),
    );
    const serverMax = Math.max(0, ...rows.map((r) => r.server?.responseTime ?? 0));
    console.log(
      `trace ${file}: ${rows.length} requests, longest ${browserMax} ms in the browser, ${serverMax} ms in the server; ` +
        `${open.length} never finished (${open.filter((r) => r.server).length} of them answered by the server, ` +
        `${open.filter((r) => r.firstByte !== null).length} with bytes received)`,
    );
  }
}

/** `ss -tn` lines of the TCP connections on `port` (Recv-Q / Send-Q: bytes not yet read / acked). */
function sockets(port: string): string {
  try {
    return execFileSync('ss', ['-tnH', `( sport = :${port} or dport = :${port} )`], { encoding: 'utf8' });
  } catch (e) {
    return `ss failed: ${(e as Error).message}`;
  }
}
