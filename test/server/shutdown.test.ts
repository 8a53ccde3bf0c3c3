// Graceful shutdown: closing the server finishes the requests in flight, closes idle and
// never-used connections at once (a pre-connected socket must not hold the drain for the 60 s
// headers timeout), and cuts everything off at --shutdown-timeout. A request is held in flight by
// stalling its tile read in a fault proxy between the server and its (HTTP) storage, so the tests
// know it is still running when close() is called.
import { copyFile, mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { startFaultProxy, type FaultProxy, type ProxyLogEntry } from '../support/fault-proxy.js';
import { fixture } from '../support/fixtures.js';
import { RangeServer } from '../support/range-server.js';
import { startTestServer, until } from '../support/server.js';

let origin: RangeServer;
let proxy: FaultProxy;

beforeAll(async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-shutdown-'));
  await copyFile(fixture('wsi/svs/CMU-1-Small-Region.svs'), path.join(dir, 'CMU.svs'));
  origin = await RangeServer.start({ root: dir });
  proxy = await startFaultProxy(origin.url);
});

afterEach(() => proxy.reset());

afterAll(async () => {
  await proxy?.close();
  await origin?.close();
});

function connect(url: string): Promise<net.Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** A server over the proxied storage with the slide already open, so a tile request reads only tile data. */
async function serverWithOpenSlide(shutdownTimeout: string): Promise<RunningServer> {
  const server = await startTestServer(`${proxy.url}/`, [
    '--shutdown-timeout',
    shutdownTimeout,
    '--cache-tiles',
    '0',
  ]);
  expect((await fetch(`${server.url}/slides/CMU.svs`)).status).toBe(200);
  return server;
}

/**
 * Starts a tile request whose storage read the proxy holds for `ms`, and resolves once that read
 * is waiting at the proxy: the request is then in flight, its response not started.
 */
async function stalledTileRequest(server: RunningServer, ms: number) {
  proxy.always({ fault: 'delay', ms }, { match: (r) => r.method === 'GET' && r.range !== undefined });
  let settled = false;
  const response = fetch(`${server.url}/tiles/CMU.svs/0/1/1.png`).finally(() => (settled = true));
  response.catch(() => undefined); // observed by the test; no unhandled rejection meanwhile
  await until(() => proxy.log.some((r) => r.fault === 'delay'));
  const read = proxy.log.find((r) => r.fault === 'delay')!;
  expect(read.done).toBe(false); // still held by the proxy
  expect(settled).toBe(false); // and the client has no answer yet
  return { response, read: read as Readonly<ProxyLogEntry>, settled: () => settled };
}

describe('shutdown', () => {
  it('closes at once despite an idle, never-used connection', async () => {
    const server = await startTestServer(`${proxy.url}/`, ['--shutdown-timeout', '30s']);
    const idle = await connect(server.url);
    const closed = new Promise((resolve) => idle.once('close', resolve));
    const started = Date.now();
    await server.close();
    // Far below the 30 s drain timeout: the idle socket was closed, not waited for (3 s leaves
    // room for a loaded machine).
    expect(Date.now() - started).toBeLessThan(3000);
    await closed;
  });

  it('finishes a request in flight before closing, and takes no new ones meanwhile', async () => {
    const server = await serverWithOpenSlide('30s');
    const inFlight = await stalledTileRequest(server, 1000);
    let closedAt = 0;
    const closing = server.close().then(() => (closedAt = Date.now()));
    // Draining: the listener is closed, so a new connection is refused.
    await expect(connect(server.url)).rejects.toThrow(/ECONNREFUSED/);
    const res = await inFlight.response;
    expect(res.status).toBe(200);
    // The whole image came through: the connection was not cut under it.
    const body = Buffer.from(await res.arrayBuffer());
    expect(await sharp(body).metadata()).toMatchObject({ format: 'png', width: 240, height: 240 });
    await closing;
    // The stalled read completed normally, and close() resolved only after it had: the server
    // waited for the request.
    expect(inFlight.read).toMatchObject({ done: true, clientAborted: false, status: 206 });
    expect(closedAt).toBeGreaterThanOrEqual(inFlight.read.endedAt!);
  });

  it('cuts a request still in flight off at --shutdown-timeout', async () => {
    // The read is held 20 s, far past the 500 ms shutdown timeout.
    const server = await serverWithOpenSlide('500ms');
    const inFlight = await stalledTileRequest(server, 20_000);
    const started = performance.now();
    await server.close();
    const elapsed = performance.now() - started;
    // No response: the connection was closed under the request.
    await expect(inFlight.response).rejects.toThrow();
    // Not before the timeout (timers never fire early beyond a millisecond), and long before the
    // stalled read would have ended (20 s; 10 s leaves room for a loaded machine).
    expect(elapsed).toBeGreaterThanOrEqual(490);
    expect(elapsed).toBeLessThan(10_000);
    // The storage read the request had started was abandoned, not waited for.
    await proxy.idle();
    expect(inFlight.read).toMatchObject({ done: true, clientAborted: true });
    expect(inFlight.read.status).toBeUndefined();
  });
});
